// Builds the admin page into ui/dist: index.html plus assets/app.js and assets/app.css.
// The server serves dist/index.html for every /admin/scripts* path and dist/assets/* at
// /admin/assets/*, so index.html references assets by absolute /admin/assets/ URLs.
import { build, context } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: { app: join(root, "src/main.js") },
  bundle: true,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: join(dist, "assets"),
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "none",
  logLevel: "warning",
};

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });
cpSync(join(root, "index.html"), join(dist, "index.html"));

const started = Date.now();
if (watch) {
  const ctx = await context(options);
  await ctx.watch();
  console.log("watching ui/src ...");
} else {
  await build(options);
  console.log(`ui built into ${dist} in ${Date.now() - started} ms`);
}
