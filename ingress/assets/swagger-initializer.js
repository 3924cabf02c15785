window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    requestInterceptor: signRequest,
  });
};

// Authorize with client_id = the key id and signature = the key's secret: the secret is
// replaced by HMAC-SHA256(secret, string_to_sign) here and never leaves the browser.
async function signRequest(req) {
  const headers = req.headers || {};
  const secret = headers["X-Signature"];
  if (!secret || !headers["X-Client-Id"]) return req;
  // Without WebCrypto (a page not served over https or localhost) the secret cannot be turned
  // into a signature here, and it must never leave the browser as it is: refuse the request.
  if (!window.crypto || !window.crypto.subtle) {
    delete headers["X-Signature"];
    const why = "This browser cannot sign requests here (no WebCrypto: open the page over https or from localhost). The request was not sent.";
    if (typeof window.alert === "function") window.alert(why);
    throw new Error(why);
  }
  const enc = new TextEncoder();
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  const method = (req.method || "GET").toUpperCase();
  if (method === "POST" && !headers["X-External-Id"]) {
    headers["X-External-Id"] = "DOCS-" + (crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(16).slice(2));
  }
  const body = req.body == null ? "" : (typeof req.body === "string" ? req.body : JSON.stringify(req.body));
  const url = new URL(req.url, window.location.href);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const bodyHash = hex(await crypto.subtle.digest("SHA-256", enc.encode(body)));
  const stringToSign = [method, url.pathname + url.search, timestamp, headers["X-External-Id"] || "", bodyHash].join("\n");
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  headers["X-Signature"] = hex(await crypto.subtle.sign("HMAC", key, enc.encode(stringToSign)));
  headers["X-Timestamp"] = timestamp;
  req.headers = headers;
  if (body !== "") req.body = body;
  return req;
}
