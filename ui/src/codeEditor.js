// CodeMirror 6 editor for the script body: line numbers, bash / JavaScript highlighting,
// search, bracket matching. Colours come from CSS (classHighlighter's tok-* classes) so
// the editor follows the page's light/dark theme.
import { EditorState, Compartment } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, rectangularSelection, crosshairCursor,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  syntaxHighlighting, indentOnInput, bracketMatching, foldGutter, foldKeymap, StreamLanguage,
} from "@codemirror/language";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { javascript } from "@codemirror/lang-javascript";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { classHighlighter } from "@lezer/highlight";

const shellLanguage = StreamLanguage.define(shell);

function languageFor(type) {
  return type === "bash" ? shellLanguage : javascript();
}

// Tab and the editor (WCAG 2.1.2, no keyboard trap). Tab indents only once the editor was
// entered deliberately: clicked, or typed in. Arriving by Tab from the field before, Tab
// and Shift+Tab move on, so tabbing through the form never edits the script. This is
// CodeMirror's own "tab focus mode" (EditorView.setTabFocusMode), held until a key other
// than Tab, Esc or a modifier is pressed; Esc brings it back for the next Tab (CodeMirror's
// documented way out). The hint under the editor says which of the two Tab does now.
const HINT_PASSING = "Tab moves to the next field. Type to edit; then Tab indents.";
const HINT_EDITING = "Tab indents. To leave the editor: Esc, then Tab.";
const HINT_ESCAPED = "Press Tab to leave the editor.";
const HOLD_MS = 24 * 3600 * 1000; // "until a key is typed", in CodeMirror's terms
const PASS_KEYS = new Set(["Tab", "Escape", "Shift", "Control", "Alt", "Meta", "CapsLock"]);

function tabFocusBehaviour(view, onHint) {
  let pointer = false;
  let passing = false;
  const say = (text) => onHint?.(text);
  view.dom.addEventListener("pointerdown", () => { pointer = true; }, true);
  view.contentDOM.addEventListener("focus", () => {
    passing = !pointer;
    pointer = false;
    view.setTabFocusMode(passing ? HOLD_MS : false);
    say(passing ? HINT_PASSING : HINT_EDITING);
  });
  view.contentDOM.addEventListener("blur", () => say(""));
  view.contentDOM.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      passing = true;
      // After CodeMirror's own Esc handling (a 2 s window): hold it until a key is typed.
      setTimeout(() => view.setTabFocusMode(HOLD_MS), 0);
      say(HINT_ESCAPED);
    } else if (!PASS_KEYS.has(e.key) && passing) {
      passing = false;
      view.setTabFocusMode(false);
      say(HINT_EDITING);
    }
  }, true);
}

export function createCodeEditor({ parent, doc = "", type = "bash", label = "Script", describedBy, onHint, onChange }) {
  const language = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        foldGutter(),
        drawSelection(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        syntaxHighlighting(classHighlighter),
        bracketMatching(),
        closeBrackets(),
        rectangularSelection(),
        crosshairCursor(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        EditorState.tabSize.of(2),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap, indentWithTab]),
        language.of(languageFor(type)),
        EditorView.contentAttributes.of({
          "aria-label": label, spellcheck: "false", autocapitalize: "off", autocorrect: "off",
          ...(describedBy ? { "aria-describedby": describedBy } : {}),
        }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && onChange) onChange();
        }),
      ],
    }),
  });
  tabFocusBehaviour(view, onHint);
  return {
    view,
    getValue: () => view.state.doc.toString(),
    setValue(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setType(t) {
      view.dispatch({ effects: language.reconfigure(languageFor(t)) });
    },
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}
