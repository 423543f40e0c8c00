import { Page, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";

/** Collects console errors and CSP violations for the whole test; assert on them at the end. */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/** Saves a full-page screenshot under end2end/screenshots/. */
export async function screenshot(page: Page, name: string) {
  const dir = path.resolve(__dirname, "../screenshots");
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

/** Waits until the WASM bundle has hydrated the page (an effect that only runs in the browser). */
export async function waitForHydration(page: Page) {
  await expect(page.locator("[data-hydrated='true']")).toHaveCount(1);
}
