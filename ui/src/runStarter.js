// Starting a manual run from the page: scripts that declare parameters ask for them first
// (runDialog.js), the others start at once. Browser scripts then run in this page.
import { api } from "./api.js";
import { startBrowserRun } from "./browserRunner.js";
import { runDialog } from "./runDialog.js";

/** The values a browser run gets: what was typed, and the declared defaults for the rest. */
function withDefaults(script, values) {
  const out = {};
  for (const p of script.params || []) {
    if (Object.hasOwn(values, p.name)) out[p.name] = values[p.name];
    else if (p.default !== undefined && p.default !== null) out[p.name] = p.default;
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
  if (script.type === "browser") startBrowserRun(answer.runId, script, withDefaults(script, values));
  return answer.runId;
}
