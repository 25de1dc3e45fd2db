// The review app's keyboard and API glue. Text from the server is always set with
// textContent (never innerHTML), and the page's CSP allows no other script.
"use strict";

function $(sel) { return document.querySelector(sel); }

async function postJSON(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = { ok: false, error: "the server answered " + res.status }; }
  return data;
}

function typing(el) {
  return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT" || el.isContentEditable);
}

// ---- home ---------------------------------------------------------------------------------
function homePage() {
  document.addEventListener("keydown", (e) => {
    if (typing(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
    const link = document.querySelector(`a[data-key="${e.key}"]`);
    if (link) { e.preventDefault(); window.location.assign(link.href); }
    if (e.key === "t") window.location.assign("/taxonomy");
  });
}

// ---- one case -----------------------------------------------------------------------------
function casePage() {
  const root = $("#case");
  const itemId = root.dataset.itemId;
  const draftKey = "draft:" + root.dataset.queue + ":" + itemId;
  const critique = $("#critique"), mode = $("#failure-mode");
  const status = $("#status"), error = $("#error"), judges = $("#judges");
  let pending = null;   // "fail" once f was pressed
  let decided = root.dataset.decided === "true";
  let saving = false;

  // A closed tab keeps what was being typed for this case.
  try {
    const draft = JSON.parse(localStorage.getItem(draftKey) || "null");
    if (draft && !decided) { critique.value = draft.critique || ""; mode.value = draft.mode || ""; }
  } catch (e) { /* no storage: nothing to restore */ }
  const keepDraft = () => {
    try { localStorage.setItem(draftKey, JSON.stringify({ critique: critique.value, mode: mode.value })); } catch (e) {}
  };
  critique.addEventListener("input", keepDraft);
  mode.addEventListener("input", keepDraft);

  function showVerdicts(list) {
    const body = $("#judge-table tbody");
    body.replaceChildren();
    for (const v of list) {
      const tr = document.createElement("tr");
      const verdict = v.verdict !== null && v.verdict !== undefined ? String(v.verdict) : "error: " + (v.error || "no verdict");
      for (const text of [v.judge, v.rubric, verdict, v.critique || ""]) {
        const td = document.createElement("td");
        td.textContent = text == null ? "" : String(text);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    if (!list.length) {
      const tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = 4; td.textContent = "No judge has scored this output.";
      tr.appendChild(td); body.appendChild(tr);
    }
  }

  async function save(verdict) {
    if (saving) return;
    error.textContent = "";
    if (verdict === "fail" && !critique.value.trim()) {
      pending = "fail";
      error.textContent = "A fail needs a critique: say what is wrong, then Ctrl+Enter.";
      critique.focus();
      return;
    }
    saving = true;
    status.textContent = "Saving…";
    const data = await postJSON("/api/label", {
      queue: root.dataset.queue, item_id: itemId, verdict: verdict,
      critique: critique.value, failure_mode: verdict === "fail" ? mode.value : "",
      prepared_at: root.dataset.preparedAt,
    });
    saving = false;
    if (!data.ok) { status.textContent = ""; error.textContent = data.error; return; }
    if (!decided) {  // first label of this case: one more done
      const prog = $("#progress"), done = Number(prog.dataset.done) + 1, total = Number(prog.dataset.total);
      prog.dataset.done = String(done);
      prog.textContent = `${done} done · ${total - done} left`;
      $("#progress-bar").value = done;
    }
    decided = true; pending = null;
    root.dataset.decided = "true";
    try { localStorage.removeItem(draftKey); } catch (e) {}
    if (document.activeElement) document.activeElement.blur();
    showVerdicts(data.verdicts || []);
    status.className = "saved";
    status.textContent = `Saved: ${data.label.verdict}` + (data.label.failure_mode ? ` (${data.label.failure_mode})` : "") +
      ` to ${data.file}. Press v for the judges' verdicts, n for the next case.`;
  }

  function toggleVerdicts() {
    if (!decided) { error.textContent = "Decide first: the judges' verdicts are shown after your label."; return; }
    judges.hidden = !judges.hidden;
  }

  $("#btn-pass").addEventListener("click", () => save("pass"));
  $("#btn-fail").addEventListener("click", () => { pending = "fail"; critique.value.trim() ? save("fail") : critique.focus(); });

  document.addEventListener("keydown", (e) => {
    const el = document.activeElement;
    if (typing(el)) {
      if (e.key === "Escape") { e.preventDefault(); el.blur(); return; }
      const submit = (e.key === "Enter" && (e.ctrlKey || e.metaKey)) || (e.key === "Enter" && el === mode);
      if (submit) { e.preventDefault(); save(pending === "fail" || mode.value.trim() ? "fail" : "pass"); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    switch (e.key) {
      case "p": e.preventDefault(); save("pass"); break;
      case "f": e.preventDefault(); pending = "fail"; status.textContent = "Fail: write the critique, pick a failure mode, then Ctrl+Enter."; critique.focus(); break;
      case "c": e.preventDefault(); critique.focus(); break;
      case "m": e.preventDefault(); mode.focus(); break;
      case "v": e.preventDefault(); toggleVerdicts(); break;
      case "n": case "ArrowRight": case "j": e.preventDefault(); window.location.assign(root.dataset.nextUrl); break;
      case "b": case "ArrowLeft": case "k":
        e.preventDefault(); if (root.dataset.prevUrl) window.location.assign(root.dataset.prevUrl); break;
      case "?": e.preventDefault(); $("#help").hidden = !$("#help").hidden; break;
      case "t": window.location.assign("/taxonomy"); break;
      case "h": window.location.assign("/"); break;
    }
  });
}

// ---- taxonomy -----------------------------------------------------------------------------
function taxonomyPage() {
  const root = $("#taxonomy");
  const err = $("#tax-error"), status = $("#tax-status");

  async function edit(action, detail) {
    err.textContent = ""; status.textContent = "Saving…";
    const data = await postJSON("/api/taxonomy", { action, detail, version: Number(root.dataset.version) });
    if (!data.ok) { status.textContent = ""; err.textContent = data.error; return false; }
    status.textContent = `Saved as version ${data.version}.`;
    window.location.reload();
    return true;
  }

  for (const row of document.querySelectorAll("tr[data-mode]")) {
    const name = row.dataset.mode;
    row.querySelector("button.define").addEventListener("click", () =>
      edit("define", { name, definition: row.querySelector(".define-text").value }));
    row.querySelector("button.rename").addEventListener("click", () =>
      edit("rename", { name, new_name: row.querySelector(".rename-text").value }));
  }
  $("#merge").addEventListener("click", () => {
    const sources = [...document.querySelectorAll(".merge-pick:checked")].map((c) => c.value);
    edit("merge", { sources, into: $("#merge-into").value });
  });

  $("#suggest").addEventListener("click", async () => {
    err.textContent = ""; status.textContent = "Asking the model…";
    const data = await postJSON("/api/taxonomy/suggest", {});
    const list = $("#proposals");
    list.replaceChildren();
    if (!data.ok) { status.textContent = ""; err.textContent = data.error; return; }
    status.textContent = `${data.proposals.length} proposals from ${data.critiques} distinct critiques` +
      (data.cached ? " (cached answer)" : ` (cost $${data.cost_usd})`) + ".";
    for (const p of data.proposals) {
      const li = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = p.action === "merge"
        ? `Merge ${p.sources.join(", ")} into ${p.into} (${p.critiques} distinct critiques): ${p.definition}`
        : `Define ${p.into} (${p.critiques} distinct critique${p.critiques === 1 ? "" : "s"}): ${p.definition}`;
      const ex = document.createElement("ul");
      for (const e of p.examples) { const i = document.createElement("li"); i.textContent = e; ex.appendChild(i); }
      const apply = document.createElement("button");
      apply.type = "button"; apply.textContent = "Apply";
      apply.addEventListener("click", () => p.action === "merge"
        ? edit("merge", { sources: p.sources, into: p.into, definition: p.definition })
        : edit("define", { name: p.into, definition: p.definition }));
      li.append(text, " ", apply, ex);
      list.appendChild(li);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "case") casePage();
  else if (page === "home") homePage();
  else if (page === "taxonomy") taxonomyPage();
});
