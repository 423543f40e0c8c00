import { test, expect } from "@playwright/test";
import { screenshot, waitForHydration, watchConsole } from "./helpers";

test("the dashboard hydrates and asks the server for the platform status", async ({ page }) => {
  const problems = watchConsole(page);
  await page.goto("/dashboard");
  const button = page.getByTestId("check-status");
  // Server-rendered HTML ships the button disabled; only the hydrated WASM app enables it.
  await waitForHydration(page);
  await expect(button).toBeEnabled();

  const call = page.waitForResponse((r) => r.url().includes("/api/fn/platform_status"));
  await button.click();
  const response = await call;
  expect(response.status()).toBe(200);
  await expect(page.getByTestId("status-state")).toHaveText("Ready");
  await expect(page.getByTestId("status-backend")).toHaveText("sqlite");
  await screenshot(page, "dashboard-overview");
  expect(problems, "no console errors or CSP violations").toEqual([]);
});

test("the navigation reaches every area and marks where you are", async ({ page }) => {
  const problems = watchConsole(page);
  await page.goto("/dashboard");
  await waitForHydration(page);
  const nav = page.getByRole("navigation", { name: "Dashboard" });
  for (const area of ["Agents", "Credentials", "Audit", "Billing", "Settings", "Admin"]) {
    await nav.getByRole("link", { name: new RegExp(`^${area}`) }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(area);
    await expect(nav.locator("a[aria-current='page']")).toContainText(area);
    await expect(page).toHaveTitle(`${area} · DeployClaw`);
  }
  await screenshot(page, "dashboard-admin");
  expect(problems).toEqual([]);
});

test("on a phone the menu opens and closes", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto("/dashboard");
  await waitForHydration(page);
  const toggle = page.getByRole("button", { name: "Menu" });
  const nav = page.getByRole("navigation", { name: "Dashboard" });
  await expect(nav).toBeHidden();
  await toggle.click();
  await expect(toggle).toHaveAttribute("aria-expanded", "true");
  await expect(nav).toBeVisible();
  await screenshot(page, "dashboard-mobile-menu");
  await nav.getByRole("link", { name: /^Audit/ }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Audit");
  await expect(nav).toBeHidden();
});

test("unknown pages say so with a 404", async ({ page }) => {
  const response = await page.goto("/dashboard/nowhere");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});
