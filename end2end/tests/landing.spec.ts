import { test, expect } from "@playwright/test";
import { screenshot, watchConsole } from "./helpers";

test("landing page explains the product and links to the dashboard", async ({ page }) => {
  const problems = watchConsole(page);
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle(/DeployClaw/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(
    "Deploy AI agents you can actually trust with your keys.",
  );
  await expect(page.getByRole("heading", { name: "What you get" })).toBeVisible();
  await expect(page.locator(".card-grid > li")).toHaveCount(6);
  await screenshot(page, "landing");

  await page.getByRole("link", { name: "Open the dashboard" }).click();
  // Signed out, the dashboard sends you to sign in.
  await expect(page).toHaveURL(/\/sign-in$/);
  await expect(page.getByRole("heading", { level: 1, name: "Sign in or create an account" })).toBeVisible();
  expect(problems, "no console errors or CSP violations").toEqual([]);
});

test("every page response carries the security headers", async ({ page }) => {
  for (const path of ["/", "/sign-in", "/dashboard"]) {
    const response = await page.goto(path);
    const headers = response!.headers();
    const csp = headers["content-security-policy"];
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/'nonce-[A-Za-z0-9_-]{16,}'/);
    expect(csp).not.toContain("'unsafe-eval'");
    expect(csp).not.toContain("'unsafe-inline'");
    expect(headers["x-content-type-options"]).toBe("nosniff");
    expect(headers["referrer-policy"]).toBe("same-origin");
    expect(headers["x-request-id"]).toBeTruthy();
    // Plain http on loopback: no HSTS.
    expect(headers["strict-transport-security"]).toBeUndefined();
  }
});

test("keyboard users can skip straight to the content", async ({ page }) => {
  await page.goto("/");
  await page.keyboard.press("Tab");
  const skip = page.getByRole("link", { name: "Skip to content" });
  await expect(skip).toBeFocused();
  await expect(skip).toBeVisible();
});
