// The front door's bar on every page behind it: who is signed in, the pages of their role, sign-out.
// Pages read `window.FRONTDOOR.claims` instead of a token: the token itself never reaches the browser.
(function () {
  "use strict";
  const who = __IDENTITY__;
  if (!who) { location.replace("/?next=" + encodeURIComponent(location.pathname)); return; }
  const PAGES = { "/hotline/": ["热线受理", "Hotline"], "/router/": ["部门工作台", "Department desk"],
    "/relief/": ["临时救助", "Relief"], "/notify/": ["督办统筹", "Coordination"], "/accounts/": ["账户管理", "Accounts"] };
  const ROLES = { operator: ["接线员", "Operator"], dept_worker: ["部门工作人员", "Department worker"],
    relief_officer: ["救助经办人员", "Relief officer"], coordinator: ["统筹协调人员", "Coordinator"], admin: ["管理员", "Administrator"] };
  const en = () => (document.documentElement.lang || "").startsWith("en");
  const T = (pair) => (pair ? pair[en() ? 1 : 0] : "");
  let ended = false;
  const bar = document.createElement("nav");
  bar.id = "frontdoor-bar";
  bar.setAttribute("style", "display:flex;gap:14px;align-items:center;flex-wrap:wrap;padding:6px 14px;" +
    "background:#1f3b57;color:#fff;font:14px system-ui,'PingFang SC','Microsoft YaHei',sans-serif");
  function link(href, text, current) {
    const a = document.createElement("a");
    a.href = href; a.textContent = text;
    a.setAttribute("style", "color:#fff;" + (current ? "font-weight:700;text-decoration:underline" : "text-decoration:none;opacity:.85"));
    return a;
  }
  function render() {
    bar.replaceChildren();
    const name = document.createElement("b");
    name.id = "frontdoor-who";
    name.textContent = who.display_name + " · " + T(ROLES[who.role]);
    bar.append(name);
    for (const page of who.pages) bar.append(link(page, T(PAGES[page]), location.pathname.startsWith(page)));
    const spacer = document.createElement("span"); spacer.style.flex = "1"; bar.append(spacer);
    if (ended) {
      const note = document.createElement("span");
      note.id = "frontdoor-ended";
      note.setAttribute("style", "background:#b3261e;padding:2px 8px;border-radius:4px");
      note.append(en() ? "Your session has ended. " : "登录已失效。",
        link("/?next=" + encodeURIComponent(location.pathname), en() ? "Sign in again" : "重新登录", true));
      bar.append(note);
    }
    const out = document.createElement("button");
    out.id = "frontdoor-sign-out"; out.type = "button"; out.textContent = en() ? "Sign out" : "退出登录";
    out.onclick = async () => {
      try { await fetch("/auth/sign-out", { method: "POST" }); } finally { location.href = "/"; }
    };
    bar.append(out);
  }
  window.FRONTDOOR = {
    identity: who,
    claims: { sub: who.username, role: who.role, department: who.department, district: who.district },
    // A refused request (signed out, disabled): say so, but keep the page, and with it a half-typed call.
    ended() { ended = true; render(); },
  };
  document.addEventListener("DOMContentLoaded", () => {
    document.body.prepend(bar);
    render();
    new MutationObserver(render).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  });
})();
