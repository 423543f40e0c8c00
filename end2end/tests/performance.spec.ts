import { test, expect } from "@playwright/test";
import { waitForHydration, watchConsole } from "./helpers";

// What a visitor on a modest link receives: the bundle compressed, cached for good under its content hash,
// and the time until the page is interactive. Numbers are printed for docs/performance.md; the assertions are
// about what was sent, never about how long it took.
test("the bundle arrives compressed, is never fetched twice, and the page hydrates on a 10 Mbit/s link", async ({ page, context }) => {
  test.setTimeout(120_000);
  const problems = watchConsole(page);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  // 10 Mbit/s down, 5 up, 40 ms round trip (Chromium's own throttling, applied to every request of the page).
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 40,
    downloadThroughput: (10 * 1000 * 1000) / 8,
    uploadThroughput: (5 * 1000 * 1000) / 8,
  });
  const urls = new Map<string, string>();
  const seen: { url: string; status: number; encoding: string; fromCache: boolean }[] = [];
  let transferred = 0;
  cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
  cdp.on("Network.responseReceived", (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    seen.push({
      url: e.response.url,
      status: e.response.status,
      encoding: h["content-encoding"] ?? "identity",
      fromCache: Boolean(e.response.fromDiskCache || e.response.fromMemoryCache),
    });
  });
  cdp.on("Network.loadingFinished", (e) => {
    transferred += e.encodedDataLength;
  });

  const started = Date.now();
  await page.goto("/sign-in");
  await waitForHydration(page);
  const hydratedMs = Date.now() - started;
  const wasm = seen.find((r) => /\/pkg\/deployclaw\.[A-Za-z0-9_-]{16,}\.wasm$/.test(r.url));
  expect(wasm, `a content-hashed bundle was fetched: ${JSON.stringify(seen.map((r) => r.url))}`).toBeTruthy();
  expect(wasm!.status).toBe(200);
  expect(wasm!.encoding).toBe("br");
  const wasmResponse = await page.request.get(wasm!.url, { headers: { "accept-encoding": "br, gzip" } });
  expect(wasmResponse.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
  // Where brotli is not offered, gzip.
  const gzipOnly = await page.request.get(wasm!.url, { headers: { "accept-encoding": "gzip" } });
  expect(gzipOnly.headers()["content-encoding"]).toBe("gzip");
  console.log(
    `first visit on 10 Mbit/s, 40 ms: ${(transferred / 1024).toFixed(0)} KiB transferred, hydrated after ${hydratedMs} ms`,
  );

  // A second visit: the immutable bundle comes from the browser's cache (no request reaches the server) or,
  // at worst, is revalidated with a 304 - never downloaded again.
  seen.length = 0;
  transferred = 0;
  await page.goto("/sign-in");
  await waitForHydration(page);
  const again = seen.filter((r) => r.url === wasm!.url);
  for (const r of again) {
    expect(r.fromCache || r.status === 304, `the bundle was downloaded again: ${JSON.stringify(r)}`).toBe(true);
  }
  console.log(`second visit: ${(transferred / 1024).toFixed(1)} KiB transferred; bundle ${again.length ? "from cache" : "not requested"}`);
  expect(problems, "no console errors or CSP violations with hashed names").toEqual([]);
});
