// A local stand-in for Stripe for the billing journey (no dependencies): the three API calls DeployClaw makes
// (form-encoded, `Authorization: Bearer sk_test_...` checked, Stripe-shaped JSON answers), a "hosted" Checkout
// page whose Pay button sends signed webhook events to DeployClaw and redirects to the success URL, and a
// "billing portal" page with a link back. Listens on 127.0.0.1 only.
import * as http from "node:http";
import * as crypto from "node:crypto";

const port = Number(process.env.E2E_STRIPE_PORT);
const key = process.env.E2E_STRIPE_KEY;
const secret = process.env.E2E_STRIPE_WEBHOOK_SECRET;
const webhook = process.env.E2E_STRIPE_WEBHOOK_URL;
const base = `http://127.0.0.1:${port}`;
const sessions = new Map();
let n = 0;
let created = Math.floor(Date.now() / 1000);

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function html(res, body) {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stripe stand-in</title></head><body>${body}</body></html>`);
}

async function readForm(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return Object.fromEntries(new URLSearchParams(text));
}

async function sendEvent(type, object) {
  created += 1;
  n += 1;
  const body = JSON.stringify({ id: `evt_e2e_${n}_${crypto.randomBytes(6).toString("hex")}`, object: "event", type, created,
    data: { object } });
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  const res = await fetch(webhook, { method: "POST", body,
    headers: { "content-type": "application/json", "stripe-signature": `t=${t},v1=${v1}` } });
  return res.status;
}

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, base);
    if (req.method === "POST" && url.pathname.startsWith("/v1/")) {
      if (req.headers.authorization !== `Bearer ${key}`) {
        return json(res, 401, { error: { type: "invalid_request_error", message: "Invalid API Key provided" } });
      }
      const form = await readForm(req);
      n += 1;
      if (url.pathname === "/v1/customers") {
        return json(res, 200, { id: `cus_e2e_${n}`, object: "customer", email: form.email });
      }
      if (url.pathname === "/v1/checkout/sessions") {
        const id = `cs_e2e_${n}`;
        sessions.set(id, form);
        return json(res, 200, { id, object: "checkout.session", url: `${base}/pay/${id}` });
      }
      if (url.pathname === "/v1/billing_portal/sessions") {
        return json(res, 200, { id: `bps_e2e_${n}`, object: "billing_portal.session",
          url: `${base}/portal?return=${encodeURIComponent(form.return_url)}` });
      }
      return json(res, 404, { error: { type: "invalid_request_error", message: "Unrecognized request URL" } });
    }
    const pay = /^\/pay\/(cs_e2e_\d+)$/.exec(url.pathname);
    if (pay && sessions.has(pay[1])) {
      const form = sessions.get(pay[1]);
      if (req.method === "GET") {
        return html(res, `<h1>Stripe Checkout (stand-in)</h1><p data-testid="price">${form["line_items[0][price]"]}</p>
          <form method="post"><button type="submit" data-testid="pay">Pay</button></form>`);
      }
      const subscription = `sub_e2e_${n}`;
      const a = await sendEvent("checkout.session.completed", { id: pay[1], object: "checkout.session",
        client_reference_id: form.client_reference_id, customer: form.customer, subscription, mode: "subscription" });
      const b = await sendEvent("customer.subscription.created", { id: subscription, object: "subscription",
        customer: form.customer, status: "active",
        metadata: { deployclaw_client_id: form["subscription_data[metadata][deployclaw_client_id]"] },
        items: { data: [{ price: { id: form["line_items[0][price]"] }, current_period_end: created + 30 * 86400 }] } });
      if (a !== 200 || b !== 200) return json(res, 502, { error: { message: `webhook answered ${a}, ${b}` } });
      res.writeHead(303, { location: form.success_url });
      return res.end();
    }
    if (url.pathname === "/portal") {
      return html(res, `<h1>Billing portal (stand-in)</h1><a data-testid="return" href="${url.searchParams.get("return")}">Return</a>`);
    }
    if (url.pathname === "/health") return json(res, 200, { ok: true });
    if (url.pathname === "/favicon.ico") {
      res.writeHead(204);
      return res.end();
    }
    json(res, 404, { error: { message: "not found" } });
  })
  .listen(port, "127.0.0.1");
