// The operator console (SPEC §15). Every action is an ordinary API call to this origin,
// signed here with WebCrypto exactly as SPEC §2 says. The admin key lives in `session` only
// (this tab's memory): never in storage, cookies or a URL, and its secret is never sent.
// Every value from the API is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  let session = null; // { clientId, secret }
  let healthTimer = null;
  const HEALTH_EVERY_MS = 5000;
  const enc = new TextEncoder();

  // ---------------------------------------------------------------- DOM helpers

  // el("td", {class: "num"}, "text", otherNode): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        node.addEventListener(k.slice(2), v);
      } else if (k === "text") {
        node.textContent = String(v);
      } else {
        node.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function show(value) {
    if (value === null || value === undefined || value === "") return "—";
    return String(value);
  }

  function flash(text) {
    $("flash").textContent = text || "";
  }

  function field(id, labelText, attrs) {
    return el("div", { class: "field" },
      el("label", { for: id }, labelText),
      el("input", Object.assign({ id: id, name: id, autocomplete: "off", spellcheck: "false" }, attrs || {})));
  }

  function selectField(id, labelText, options) {
    const select = el("select", { id: id, name: id });
    for (const [value, text] of options) select.append(el("option", { value: value }, text));
    return el("div", { class: "field" }, el("label", { for: id }, labelText), select);
  }

  function table(caption, headers, rows, cls) {
    const head = el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)));
    const body = rows.length
      ? rows
      : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "None."))];
    return el("div", { class: "table-wrap" },
      el("table", { class: cls || null }, el("caption", { class: "muted" }, caption), el("thead", {}, head), el("tbody", {}, body)));
  }

  function props(pairs) {
    const dl = el("dl", { class: "props" });
    for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v instanceof Node ? v : show(v)));
    return dl;
  }

  function errorBox(id) {
    return el("p", { id: id, class: "error", role: "alert" });
  }

  function link(href, text) {
    return el("a", { href: href }, text);
  }

  // ---------------------------------------------------------------- signing and calls

  function hex(buf) {
    return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function newExternalId() {
    const random = window.crypto.randomUUID
      ? window.crypto.randomUUID()
      : hex(window.crypto.getRandomValues(new Uint8Array(16)));
    return "CONSOLE-" + random;
  }

  // The answer: { status, action, data, apiCallId, ok }.
  async function call(method, pathAndQuery, body) {
    if (!session) throw new Error("not signed in");
    const text = body === undefined ? "" : JSON.stringify(body);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const externalId = method === "POST" ? newExternalId() : "";
    const bodyHash = hex(await crypto.subtle.digest("SHA-256", enc.encode(text)));
    const stringToSign = [method, pathAndQuery, timestamp, externalId, bodyHash].join("\n");
    const key = await crypto.subtle.importKey(
      "raw", enc.encode(session.secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const signature = hex(await crypto.subtle.sign("HMAC", key, enc.encode(stringToSign)));
    const headers = {
      "X-Client-Id": session.clientId,
      "X-Timestamp": timestamp,
      "X-Signature": signature,
    };
    if (externalId) headers["X-External-Id"] = externalId;
    if (text !== "") headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(pathAndQuery, {
        method: method,
        headers: headers,
        body: text === "" ? undefined : text,
        cache: "no-store",
        credentials: "omit",
        redirect: "error",
      });
    } catch (e) {
      return { status: 0, action: "NETWORK_ERROR", data: "the engine could not be reached: " + e.message, ok: false };
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch (e) {
      envelope = null;
    }
    if (!envelope || typeof envelope !== "object") {
      return { status: response.status, action: "HTTP_" + response.status, data: "not an envelope", ok: false };
    }
    return {
      status: response.status,
      action: envelope.message_action,
      data: envelope.message_data,
      apiCallId: envelope.api_call_id,
      ok: response.status >= 200 && response.status < 300,
    };
  }

  // The API's own words: message_action and message.
  function describeError(r) {
    let message = r.data;
    if (message && typeof message === "object") {
      message = message.message || JSON.stringify(message);
    }
    const id = r.apiCallId ? " (" + r.apiCallId + ")" : "";
    return r.action + ": " + show(message) + id;
  }

  function showError(target, r) {
    target.textContent = describeError(r);
  }

  // ---------------------------------------------------------------- session

  function signedIn(clientId, secret) {
    session = { clientId: clientId, secret: secret };
    $("login").hidden = true;
    $("view").hidden = false;
    $("nav").hidden = false;
    $("session").hidden = false;
    $("who").textContent = "Signed in as " + clientId;
    if (!location.hash || location.hash === "#" || location.hash === "#/") {
      location.hash = "#/health";
    } else {
      route();
    }
  }

  function signOut() {
    session = null;
    stopHealth();
    $("view").replaceChildren();
    $("view").hidden = true;
    $("nav").hidden = true;
    $("session").hidden = true;
    $("login").hidden = false;
    $("login-secret").value = "";
    flash("");
    $("login-client-id").focus();
  }

  async function onLogin(event) {
    event.preventDefault();
    const error = $("login-error");
    error.textContent = "";
    if (!window.crypto || !window.crypto.subtle) {
      error.textContent = "This browser cannot sign requests here (no WebCrypto: open the console over https or from localhost).";
      return;
    }
    const clientId = $("login-client-id").value.trim();
    const secret = $("login-secret").value;
    session = { clientId: clientId, secret: secret };
    const r = await call("GET", "/admin/overview");
    if (!r.ok) {
      session = null;
      showError(error, r);
      $("login-secret").focus();
      return;
    }
    $("login-secret").value = "";
    signedIn(clientId, secret);
  }

  // ---------------------------------------------------------------- routing

  const pages = {
    health: renderHealth,
    calls: renderCalls,
    users: renderUser,
    contracts: renderContract,
    keys: renderKeys,
    "dead-letters": renderDeadLetters,
  };

  function route() {
    if (!session) return;
    stopHealth();
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    const name = pages[parts[0]] ? parts[0] : "health";
    const arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : "";
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.getAttribute("href") === "#/" + name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    flash("");
    const view = $("view");
    view.replaceChildren();
    pages[name](view, arg);
    const heading = view.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // ---------------------------------------------------------------- health

  function stopHealth() {
    if (healthTimer) clearInterval(healthTimer);
    healthTimer = null;
  }

  function tile(label, value, cls) {
    return el("div", { class: "tile" },
      el("div", { class: "label" }, label),
      el("div", { class: "value " + (cls || "") }, value));
  }

  function yesNo(v) {
    return v ? ["up", "ok"] : ["down", "bad"];
  }

  function renderHealth(view) {
    const tiles = el("div", { class: "tiles", id: "health-tiles" });
    const updated = el("p", { class: "muted", id: "health-updated" });
    const error = errorBox("health-error");
    view.append(
      el("h1", {}, "Health"),
      el("p", { class: "muted" }, "Refreshed every 5 seconds. Rates are counted in MySQL over the last minute, across every ingress and worker."),
      error, tiles, updated);
    async function refresh() {
      const r = await call("GET", "/admin/overview");
      if (!r.ok) {
        showError(error, r);
        return;
      }
      error.textContent = "";
      const o = r.data;
      const c = o.checks || {};
      const items = [];
      const ready = o.ready ? ["ready", "ok"] : ["not ready", "bad"];
      items.push(tile("Readiness", ready[0], ready[1]));
      for (const [name, up] of [["MySQL", c.mysql], ["Redis", c.redis], ["RabbitMQ", c.rabbitmq]]) {
        const [text, cls] = yesNo(up);
        items.push(tile(name, text, cls));
      }
      const q = o.command_queue;
      items.push(tile("Queue depth", q ? q.messages : "unknown"));
      items.push(tile("Consumers", q ? q.consumers : "unknown", q && q.consumers === 0 ? "bad" : ""));
      const d = o.dead_letter_queue;
      items.push(tile("Dead letters", d ? d.messages : "unknown", d && d.messages > 0 ? "bad" : ""));
      const a = o.activity;
      if (a) {
        const perSecond = (n) => (n / a.window_seconds).toFixed(1) + "/s";
        items.push(tile("Requests (last minute)", a.requests + " · " + perSecond(a.requests)));
        items.push(tile("Approved (last minute)", a.approved + " · " + perSecond(a.approved)));
        items.push(tile("Rejected (last minute)", a.rejected + " · " + perSecond(a.rejected)));
      } else {
        items.push(tile("Rates", "unknown (MySQL)", "bad"));
      }
      tiles.replaceChildren(...items);
      updated.textContent = "Updated " + new Date().toLocaleTimeString() + " (" + r.apiCallId + ")";
    }
    refresh();
    healthTimer = setInterval(refresh, HEALTH_EVERY_MS);
  }

  // ---------------------------------------------------------------- calls

  function statusView(s) {
    const result = s.result || {};
    const pairs = [
      ["api_call_id", s.api_call_id],
      ["type", s.type],
      ["status", s.status],
      ["reason", s.reason],
      ["created_at", s.created_at],
      ["completed_at", s.completed_at],
    ];
    if (result.nomor_kontrak) {
      pairs.push(["contract", link("#/contracts/" + encodeURIComponent(result.nomor_kontrak), result.nomor_kontrak)]);
    }
    if (result.user_id) {
      pairs.push(["user", link("#/users/" + encodeURIComponent(result.user_id), result.user_id)]);
    }
    return el("div", { class: "card", id: "call-result" },
      props(pairs),
      el("h2", {}, "Result"),
      el("pre", { class: "raw" }, JSON.stringify(s.result, null, 2)));
  }

  function renderCalls(view, arg) {
    const out = el("div", { id: "call-out" });
    const error = errorBox("call-error");
    async function find(path) {
      error.textContent = "";
      out.replaceChildren();
      const r = await call("GET", path);
      if (!r.ok) {
        showError(error, r);
        return;
      }
      out.append(statusView(r.data));
    }
    const byId = el("form", {
      id: "find-by-id",
      onsubmit: (e) => {
        e.preventDefault();
        const id = $("call-id").value.trim();
        find("/status/" + encodeURIComponent(id));
      },
    }, field("call-id", "Api call id", { required: true, placeholder: "API_CALL_…" }),
    el("button", { type: "submit" }, "Find by api call id"));
    const byExternal = el("form", {
      id: "find-by-external-id",
      onsubmit: (e) => {
        e.preventDefault();
        const q = new URLSearchParams();
        q.set("external_id", $("call-external-id").value.trim());
        q.set("endpoint", $("call-endpoint").value);
        q.set("merchant", $("call-merchant").value.trim());
        find("/status?" + q.toString());
      },
    }, field("call-merchant", "Merchant", { required: true, placeholder: "tokopedia, or PLATFORM" }),
    field("call-external-id", "External id", { required: true }),
    selectField("call-endpoint", "Endpoint", [["transaction", "transaction"], ["payment", "payment"], ["refund", "refund"]]),
    el("button", { type: "submit" }, "Find by external id"));
    view.append(el("h1", {}, "Find a call"), byId, byExternal, error, out);
    if (arg) {
      $("call-id").value = arg;
      find("/status/" + encodeURIComponent(arg));
    }
  }

  // ---------------------------------------------------------------- users

  const LIMIT_FIELDS = [
    ["1", "limit_one_month", "1 month"],
    ["2", "limit_two_month", "2 months"],
    ["3", "limit_three_month", "3 months"],
    ["6", "limit_sixth", "6 months"],
  ];

  function limitsTable(caption, limits) {
    const rows = LIMIT_FIELDS.map(([tenor, , label]) => {
      const pair = (limits || {})[tenor] || {};
      return el("tr", {}, el("td", {}, label), el("td", { class: "num" }, show(pair.granted)), el("td", { class: "num" }, show(pair.available)));
    });
    return table(caption, ["Tenor", "Granted", "Available"], rows, "narrow");
  }

  function installmentRows(items) {
    return items.map((i) => el("tr", {},
      el("td", {}, i.nomor_kontrak ? link("#/contracts/" + encodeURIComponent(i.nomor_kontrak), i.nomor_kontrak) : "—"),
      el("td", { class: "num" }, show(i.cicilan_ke)),
      el("td", {}, show(i.tanggal_tagihan)),
      el("td", { class: "num" }, show(i.harga_cicilan)),
      el("td", { class: "num" }, show(i.terbayar)),
      el("td", {}, show(i.status)),
      el("td", { class: "num" }, show(i.hari_terlambat)),
      el("td", { class: "num" }, show(i.denda)),
      el("td", { class: "num" }, show(i.denda_terbayar))));
  }

  const INSTALLMENT_HEADERS = ["Contract", "#", "Due", "Amount", "Paid", "Status", "Days overdue", "Late fees", "Fees paid"];

  function renderUser(view, arg) {
    const error = errorBox("user-error");
    const out = el("div", { id: "user-out" });
    const form = el("form", {
      id: "user-form",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = "#/users/" + encodeURIComponent($("user-id").value.trim());
      },
    }, field("user-id", "User id", { required: true, placeholder: "USR_…" }), el("button", { type: "submit" }, "Open user"));
    view.append(el("h1", {}, "User"), form, error, out);
    if (arg) {
      $("user-id").value = arg;
      loadUser(arg, out, error);
    }
  }

  async function loadUser(userId, out, error) {
    const base = "/users/" + encodeURIComponent(userId);
    const r = await call("GET", base);
    if (!r.ok) {
      showError(error, r);
      return;
    }
    const u = r.data;
    const actionError = errorBox("user-action-error");
    const locked = u.user_status === "LOCK";
    const statusButton = el("button", {
      type: "button",
      id: "user-toggle-status",
      class: locked ? "" : "danger",
      onclick: async () => {
        actionError.textContent = "";
        const next = locked ? "ACTIVE" : "LOCK";
        const s = await call("PATCH", base + "/status", { user_status: next });
        if (!s.ok) {
          showError(actionError, s);
          return;
        }
        await reloadUser(userId, next === "LOCK" ? "User locked." : "User unlocked.");
      },
    }, locked ? "Unlock user" : "Lock user");

    const limitsForm = el("form", {
      id: "limits-form",
      onsubmit: async (e) => {
        e.preventDefault();
        actionError.textContent = "";
        const body = {};
        for (const [tenor, name] of LIMIT_FIELDS) {
          const v = $("limit-" + tenor).value.trim();
          if (v !== "") body[name] = v;
        }
        const s = await call("PATCH", base + "/limits", body);
        if (!s.ok) {
          showError(actionError, s);
          return;
        }
        await reloadUser(userId, "Limits changed.");
      },
    }, LIMIT_FIELDS.map(([tenor, , label]) => field("limit-" + tenor, "New granted, " + label, { inputmode: "decimal", placeholder: "unchanged" })),
    el("button", { type: "submit" }, "Change limits"));

    out.replaceChildren(
      el("div", { class: "card" },
        props([
          ["user_id", u.user_id],
          ["status", u.user_status],
          ["full_name", u.full_name],
          ["legal_name", u.legal_name],
          ["nik", u.nik],
          ["tempat_lahir", u.tempat_lahir],
          ["tanggal_lahir", u.tanggal_lahir],
          ["gaji", u.gaji],
          ["created_at", u.created_at],
        ]),
        el("div", { class: "actions" }, statusButton)),
      actionError,
      el("h2", {}, "Limits"),
      limitsTable("Granted and available per tenor", u.limits),
      el("p", { class: "muted" }, "Leave a tenor blank to keep it. A new granted limit below what is in use is refused (LIMIT_BELOW_USED)."),
      limitsForm);

    const contracts = el("div", { id: "user-contracts" });
    const installments = el("div", { id: "user-installments" });
    const payments = el("div", { id: "user-payments" });
    const changes = el("div", { id: "user-limit-changes" });
    out.append(
      el("h2", {}, "Contracts"), contracts,
      el("h2", {}, "Installments"), installments,
      el("h2", {}, "Payments"), payments,
      el("h2", {}, "Limit changes"), changes);

    const billings = await listAll(base + "/billings", installments);
    if (billings) {
      installments.replaceChildren(table("Installments, by due date", INSTALLMENT_HEADERS, installmentRows(billings)));
      const numbers = [...new Set(billings.map((b) => b.nomor_kontrak).filter(Boolean))];
      contracts.replaceChildren(numbers.length
        ? el("ul", {}, numbers.map((n) => el("li", {}, link("#/contracts/" + encodeURIComponent(n), n))))
        : el("p", { class: "muted" }, "None."));
    }
    const bills = await listAll(base + "/bills", payments);
    if (bills) {
      payments.replaceChildren(table("Approved payments", ["Payment", "Contract", "Paid", "Outstanding after", "Date", "Status"],
        bills.map((b) => el("tr", {},
          el("td", {}, show(b.kode_bayar)),
          el("td", {}, link("#/contracts/" + encodeURIComponent(b.nomor_kontrak), b.nomor_kontrak)),
          el("td", { class: "num" }, show(b.terbayarkan)),
          el("td", { class: "num" }, show(b.sisa_tagihan_bulanan)),
          el("td", {}, show(b.tanggal_bayar)),
          el("td", {}, show(b.status_bayar))))));
    }
    const limitChanges = await listAll(base + "/limit-changes", changes);
    if (limitChanges) {
      changes.replaceChildren(table("Oldest first", ["When", "Tenor", "Old granted", "New granted", "Api call", "Key"],
        limitChanges.map((c) => el("tr", {},
          el("td", {}, show(c.changed_at || c.created_at)),
          el("td", {}, show(c.tenor)),
          el("td", { class: "num" }, show(c.old_granted)),
          el("td", { class: "num" }, show(c.new_granted)),
          el("td", {}, show(c.api_call_id)),
          el("td", {}, show(c.client_id || c.key_id))))));
    }
  }

  async function reloadUser(userId, message) {
    const out = $("user-out");
    const error = $("user-error");
    error.textContent = "";
    await loadUser(userId, out, error);
    flash(message);
  }

  // Every page of a listing (up to 10 pages of 100); the API's error shown in `target`.
  async function listAll(path, target) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 10; page++) {
      const q = new URLSearchParams({ limit: "100" });
      if (cursor) q.set("cursor", cursor);
      const r = await call("GET", path + "?" + q.toString());
      if (!r.ok) {
        target.replaceChildren(el("p", { class: "error", role: "alert" }, describeError(r)));
        return null;
      }
      items.push(...(r.data.items || []));
      cursor = r.data.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  // ---------------------------------------------------------------- contracts

  function renderContract(view, arg) {
    const error = errorBox("contract-error");
    const out = el("div", { id: "contract-out" });
    const form = el("form", {
      id: "contract-form",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = "#/contracts/" + encodeURIComponent($("contract-id").value.trim());
      },
    }, field("contract-id", "Contract number", { required: true, placeholder: "KTR_…" }), el("button", { type: "submit" }, "Open contract"));
    view.append(el("h1", {}, "Contract"), form, error, out);
    if (arg) {
      $("contract-id").value = arg;
      loadContract(arg, out, error);
    }
  }

  async function loadContract(number, out, error) {
    const r = await call("GET", "/contracts/" + encodeURIComponent(number));
    if (!r.ok) {
      showError(error, r);
      return;
    }
    const c = r.data;
    out.replaceChildren(
      el("div", { class: "card" }, props([
        ["nomor_kontrak", c.nomor_kontrak],
        ["user", link("#/users/" + encodeURIComponent(c.user_id), c.user_id)],
        ["status_kontrak", c.status_kontrak],
        ["tanggal_kontrak", c.tanggal_kontrak],
        ["nama_aset", c.nama_aset],
        ["otr", c.otr],
        ["admin_fee", c.admin_fee],
        ["harga_aset", c.harga_aset],
        ["pokok", c.pokok],
        ["bunga_persen", c.bunga_persen],
        ["jumlah_bunga", c.jumlah_bunga],
        ["jumlah_cicilan", c.jumlah_cicilan],
        ["cicilan_bulanan", c.cicilan_bulanan],
        ["tenor", c.tenor],
        ["total_refund", c.total_refund],
      ])),
      el("h2", {}, "Installments"),
      table("By installment number", INSTALLMENT_HEADERS,
        installmentRows((c.tagihan || []).map((i) => Object.assign({ nomor_kontrak: c.nomor_kontrak }, i)))),
      el("h2", {}, "The user's limits now"),
      limitsTable("Granted and available per tenor", c.limit_tersisa));
  }

  // ---------------------------------------------------------------- keys

  function renderKeys(view) {
    const error = errorBox("keys-error");
    const secretBox = el("div", { id: "secret-box", "aria-live": "polite" });
    const list = el("div", { id: "keys-list" });

    async function refresh() {
      const r = await call("GET", "/admin/keys");
      if (!r.ok) {
        showError(error, r);
        return;
      }
      const rows = r.data.items.map((k) => {
        const actions = el("div", { class: "actions" });
        if (!k.revoked_at) {
          actions.append(
            el("button", {
              type: "button", class: "secondary", "data-action": "rotate", "data-client-id": k.client_id,
              onclick: () => rotate(k.client_id),
            }, "Rotate"),
            el("button", {
              type: "button", class: "secondary", "data-action": "rate", "data-client-id": k.client_id,
              onclick: () => {
                $("rate-client-id").value = k.client_id;
                $("rate-per-second").value = k.rate_per_second || "";
                $("rate-burst").value = k.rate_burst || "";
                $("rate-per-second").focus();
              },
            }, "Set rate…"),
            el("button", {
              type: "button", class: "danger", "data-action": "revoke", "data-client-id": k.client_id,
              onclick: () => revoke(k.client_id),
            }, "Revoke"));
        }
        return el("tr", { "data-client-id": k.client_id },
          el("td", {}, k.client_id),
          el("td", {}, k.name),
          el("td", {}, k.merchant_id),
          el("td", {}, k.role),
          el("td", {}, show(k.created_at)),
          el("td", {}, show(k.revoked_at)),
          el("td", { class: "num" }, show(k.rate_per_second || "default")),
          el("td", { class: "num" }, show(k.rate_burst || "default")),
          el("td", {}, actions));
      });
      list.replaceChildren(table("Every key, oldest first; secrets are never listed",
        ["Client id", "Name", "Merchant", "Role", "Created", "Revoked", "Rate/s", "Burst", "Actions"], rows));
    }

    function showSecret(title, clientId, secret) {
      secretBox.replaceChildren(el("div", { class: "card" },
        el("h2", {}, title),
        el("p", {}, "Client id: ", el("code", { id: "new-client-id" }, clientId)),
        el("p", {}, "Secret (shown only now; store it before leaving this page):"),
        el("p", { class: "secret", id: "new-secret" }, secret),
        el("button", { type: "button", class: "secondary", onclick: () => secretBox.replaceChildren() }, "Hide the secret")));
    }

    async function rotate(clientId) {
      error.textContent = "";
      if (!window.confirm("Rotate the secret of " + clientId + "? The old secret keeps working for 24 hours.")) return;
      const r = await call("POST", "/admin/keys/" + encodeURIComponent(clientId) + "/rotate", {});
      if (!r.ok) {
        showError(error, r);
        return;
      }
      showSecret("New secret", r.data.client_id, r.data.secret);
      flash("Rotated " + clientId + "; the previous secret works until " + r.data.previous_secret_valid_until + ".");
      await refresh();
    }

    async function revoke(clientId) {
      error.textContent = "";
      if (!window.confirm("Revoke " + clientId + "? Every ingress refuses it at once.")) return;
      const r = await call("DELETE", "/admin/keys/" + encodeURIComponent(clientId));
      if (!r.ok) {
        showError(error, r);
        return;
      }
      flash("Revoked " + clientId + ".");
      await refresh();
    }

    const createForm = el("form", {
      id: "key-create-form",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        const body = { name: $("key-name").value.trim(), role: $("key-role").value };
        const rate = $("key-rate").value.trim();
        const burst = $("key-burst").value.trim();
        if (rate !== "") body.rate_per_second = Number(rate);
        if (burst !== "") body.rate_burst = Number(burst);
        const r = await call("POST", "/admin/keys", body);
        if (!r.ok) {
          showError(error, r);
          return;
        }
        showSecret("Key created", r.data.client_id, r.data.secret);
        flash("Created " + r.data.client_id + " for " + r.data.merchant_id + ".");
        await refresh();
      },
    }, field("key-name", "Name (merchant)", { required: true, placeholder: "tokopedia" }),
    selectField("key-role", "Role", [["merchant", "merchant"], ["admin", "admin"]]),
    field("key-rate", "Rate per second (optional)", { inputmode: "numeric" }),
    field("key-burst", "Burst (optional)", { inputmode: "numeric" }),
    el("button", { type: "submit" }, "Create key"));

    const rateForm = el("form", {
      id: "key-rate-form",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        const clientId = $("rate-client-id").value.trim();
        const body = {};
        const rate = $("rate-per-second").value.trim();
        const burst = $("rate-burst").value.trim();
        if (rate !== "") body.rate_per_second = Number(rate);
        if (burst !== "") body.rate_burst = Number(burst);
        const r = await call("PATCH", "/admin/keys/" + encodeURIComponent(clientId) + "/rate", body);
        if (!r.ok) {
          showError(error, r);
          return;
        }
        flash("Rate of " + clientId + " set.");
        await refresh();
      },
    }, field("rate-client-id", "Client id", { required: true }),
    field("rate-per-second", "Rate per second (blank: default)", { inputmode: "numeric" }),
    field("rate-burst", "Burst (blank: default)", { inputmode: "numeric" }),
    el("button", { type: "submit" }, "Set rate"));

    view.append(
      el("h1", {}, "API keys"),
      error,
      secretBox,
      el("h2", {}, "Create a key"), createForm,
      el("h2", {}, "Set a key's rate"), rateForm,
      el("h2", {}, "Keys"), list);
    refresh();
  }

  // ---------------------------------------------------------------- dead letters

  function renderDeadLetters(view) {
    const error = errorBox("dlq-error");
    const list = el("div", { id: "dlq-list" });

    async function refresh() {
      const r = await call("GET", "/admin/dead-letters");
      if (!r.ok) {
        showError(error, r);
        return;
      }
      const rows = r.data.items.map((d, i) => {
        const id = "dlq-select-" + i;
        const pick = d.replayable && d.api_call_id
          ? [el("input", { type: "checkbox", id: id, "data-api-call-id": d.api_call_id }),
            el("label", { for: id, class: "muted" }, " select")]
          : ["—"];
        return el("tr", {},
          el("td", {}, ...pick),
          el("td", {}, show(d.api_call_id)),
          el("td", {}, show(d.type)),
          el("td", {}, show(d.merchant_id)),
          el("td", {}, show(d.external_id)),
          el("td", {}, show(d.accepted_at)),
          el("td", {}, show(d.death_reason)),
          el("td", {}, show(d.error)));
      });
      list.replaceChildren(
        r.data.truncated ? el("p", { class: "muted" }, "The first 1,000 messages; there may be more.") : "",
        table("Dead-lettered commands (they stay until replayed)",
          ["Replay", "Api call id", "Type", "Merchant", "External id", "Accepted", "Reason", "Error"], rows));
    }

    async function replay(body, what) {
      error.textContent = "";
      const r = await call("POST", "/admin/dead-letters/replay", body);
      if (!r.ok) {
        showError(error, r);
        return;
      }
      flash("Replayed " + r.data.replayed.length + " command(s) (" + what + ").");
      await refresh();
    }

    const buttons = el("div", { class: "actions" },
      el("button", {
        type: "button", id: "dlq-replay-selected",
        onclick: () => {
          const ids = [...list.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.getAttribute("data-api-call-id"));
          if (!ids.length) {
            error.textContent = "Select the commands to replay first.";
            return;
          }
          replay({ ids: ids }, "selected");
        },
      }, "Replay selected"),
      el("button", {
        type: "button", id: "dlq-replay-all", class: "secondary",
        onclick: () => {
          if (window.confirm("Replay every decodable dead letter?")) replay({ all: true }, "all");
        },
      }, "Replay all"),
      el("button", { type: "button", class: "secondary", onclick: () => refresh() }, "Refresh"));
    view.append(el("h1", {}, "Dead letters"), error, buttons, list);
    refresh();
  }

  // ---------------------------------------------------------------- start

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", signOut);
    window.addEventListener("hashchange", route);
    $("login-client-id").focus();
  });
})();
