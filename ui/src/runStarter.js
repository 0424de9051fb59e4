// Starting a manual run from the page: scripts that declare parameters ask for them first
// (runDialog.js), the others start at once. Browser scripts then run in this page.
import { api } from "./api.js";
import { startBrowserRun } from "./browserRunner.js";
import { runDialog } from "./runDialog.js";

/**
 * The values a browser run gets: the server's answer has every parameter checked, typed and
 * with its default filled in, but secrets as ***; those are what was typed here (browser
 * scripts cannot have stored secret defaults: the page never receives stored secrets).
 */
export function browserParams(script, answerParams, typed) {
  const out = { ...(answerParams || {}) };
  for (const p of script.params || []) {
    if (p.type === "secret") out[p.name] = Object.hasOwn(typed, p.name) ? typed[p.name] : null;
    else if (!Object.hasOwn(out, p.name)) out[p.name] = Object.hasOwn(typed, p.name) ? typed[p.name] : p.default ?? null;
  }
  return out;
}

/**
 * Starts a run of `script` (a definition document); `initial` (a run's params) is offered
 * again instead of the defaults. Resolves to the new run's id, or null when the admin
 * cancelled the dialog. Throws the ApiError of a refused start when nothing was asked.
 */
export async function startManualRun(script, { initial = {}, again = false } = {}) {
  const declared = Array.isArray(script.params) && script.params.length > 0;
  let values = {};
  let answer;
  if (declared) {
    answer = await runDialog({
      script,
      initial,
      title: `${again ? "Run again" : "Run"}: ${script.name}`,
      submit: (v) => {
        values = v;
        return api.runScript(script.id, v);
      },
    });
    if (!answer) return null;
  } else {
    answer = await api.runScript(script.id);
  }
  if (script.type === "browser") startBrowserRun(answer.runId, script, browserParams(script, answer.params, values));
  return answer.runId;
}
