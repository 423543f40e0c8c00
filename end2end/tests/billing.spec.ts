import { test, expect } from "@playwright/test";
import { enrolAuthenticator, enterEmailAndCode, screenshot, waitForHydration, watchConsole } from "./helpers";
import { billingURL } from "../playwright.config";

// The billing journey, on the second server (billing on, Stripe replaced by end2end/stripe-stand-in.mjs): a new
// customer on the trial upgrades to Team through Checkout, comes back to the Team plan, and opens the portal.
test.use({ baseURL: billingURL });

const run = Date.now().toString(36);
const customer = `grace-${run}@billing.example`;

test("a new customer upgrades from the trial to Team through Stripe Checkout", async ({ page }) => {
  test.setTimeout(90_000);
  const problems = watchConsole(page);
  await enterEmailAndCode(page, customer);
  await expect(page).toHaveURL(/\/sign-up$/);
  await page.getByLabel("Company or your name").fill(`Billing ${run}`);
  await page.getByTestId("create-account").click();
  await enrolAuthenticator(page);
  await page.getByTestId("saved-codes").check();
  await page.getByTestId("continue-dashboard").click();
  await expect(page).toHaveURL(/\/dashboard$/);

  await page.goto("/dashboard/billing");
  await waitForHydration(page);
  await expect(page.getByTestId("current-plan")).toContainText("Trial plan");
  await expect(page.getByTestId("usage-agents")).toContainText("0 of 1");
  await expect(page.locator("[data-testid^='plan-']")).toHaveCount(3);
  await screenshot(page, "billing-trial");

  // Just signed in: the second factor is fresh, so the upgrade goes straight to Stripe's hosted page.
  await page.getByTestId("upgrade-team").click();
  await expect(page).toHaveURL(/127\.0\.0\.1:\d+\/pay\/cs_e2e_/);
  await expect(page.getByTestId("price")).toHaveText("price_deployclaw_team");
  await page.getByTestId("pay").click();

  await expect(page).toHaveURL(/\/dashboard\/billing\?checkout=success$/);
  await waitForHydration(page);
  await expect(page.getByTestId("checkout-returned")).toBeVisible();
  await expect(page.getByTestId("current-plan")).toContainText("Team plan");
  await expect(page.getByTestId("subscription-status")).toHaveText("Active");
  await expect(page.getByTestId("usage-agents")).toContainText("0 of 10");
  await screenshot(page, "billing-team");

  await page.getByTestId("manage-billing").click();
  await expect(page.getByRole("heading", { name: "Billing portal (stand-in)" })).toBeVisible();
  await page.getByTestId("return").click();
  await expect(page).toHaveURL(/\/dashboard\/billing\?portal=returned$/);
  expect(problems, "no console errors or CSP violations").toEqual([]);
});
