import { test, expect } from "@playwright/test";
import { screenshot, watchConsole } from "./helpers";

test("the security page shows its threat model with an accessible diagram", async ({ page }) => {
  const problems = watchConsole(page);
  const response = await page.goto("/security");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle(/Security and threat model/);
  await expect(page.getByRole("heading", { level: 1 })).toBeVisible();

  const diagram = page.getByRole("img", { name: "DeployClaw trust boundaries" });
  await expect(diagram).toBeVisible();
  await expect(diagram).toHaveAccessibleDescription(/only way out is the egress gateway/);

  for (const name of ["Trust boundaries", "Security primitives", "Threat model", "What we do not do yet"]) {
    await expect(page.getByRole("heading", { level: 2, name })).toBeVisible();
  }
  for (const name of ["Credential encryption", "Tenant isolation", "Authentication", "Sessions", "Audit trail", "Payment surface"]) {
    await expect(page.getByRole("heading", { level: 3, name })).toBeVisible();
  }
  expect(await page.locator("table.threats tbody tr").count()).toBeGreaterThanOrEqual(8);
  // Each primitive states its status; the payment surface is implemented (billing landed).
  for (const id of ["credentials", "isolation", "egress", "auth", "sessions", "audit", "payment"]) {
    await expect(page.locator(`#${id} [data-status]`).first()).toHaveText(/^(handled|partial|in progress|gap)$/);
  }
  await expect(page.locator("#payment [data-status]").first()).toHaveText("handled");
  await screenshot(page, "security");
  expect(problems, "no console errors or CSP violations").toEqual([]);
});

test("following a source link shows the code it names, highlighted", async ({ page }) => {
  const problems = watchConsole(page);
  await page.goto("/security");
  const link = page.locator("#credentials li", { hasText: "Associated data binding" }).locator("a.source-link");
  const href = await link.getAttribute("href");
  const [, start, end] = href!.match(/\?lines=(\d+)-(\d+)#/)!;
  await link.click();

  await expect(page).toHaveURL(/\/security\/source\/src\/keys\/envelope\.rs\?lines=\d+-\d+#L\d+-L\d+$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("src/keys/envelope.rs");
  const highlighted = page.locator(".line.hl");
  await expect(highlighted).toHaveCount(Number(end) - Number(start) + 1);
  await expect(highlighted.filter({ hasText: "fn aad_v1" })).toHaveCount(1);
  await expect(page.locator(`#L${start}`)).toBeInViewport();

  await page.getByRole("link", { name: /Security and threat model/ }).click();
  await expect(page).toHaveURL(/\/security$/);
  expect(problems, "no console errors or CSP violations").toEqual([]);
});

test("security.txt names the contact, expiry, canonical URL and policy", async ({ request, baseURL }) => {
  const response = await request.get("/.well-known/security.txt");
  expect(response.status()).toBe(200);
  expect(response.headers()["content-type"]).toBe("text/plain; charset=utf-8");
  const text = await response.text();
  expect(text).toMatch(/^Contact: (mailto|https|tel):\S+$/m);
  expect(text).toContain(`Canonical: ${baseURL}/.well-known/security.txt`);
  expect(text).toContain(`Policy: ${baseURL}/security`);
  expect(text).toMatch(/^Preferred-Languages: en$/m);
  const expires = new Date(text.match(/^Expires: (\S+)$/m)![1]);
  expect(expires.getTime()).toBeGreaterThan(Date.now());
  expect(expires.getTime()).toBeLessThan(Date.now() + 365 * 24 * 3600 * 1000);
});

test("the landing page links to the security page", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("navigation", { name: "Site" }).getByRole("link", { name: "Security" }).click();
  await expect(page).toHaveURL(/\/security$/);
  await expect(page.getByRole("img", { name: "DeployClaw trust boundaries" })).toBeVisible();
});
