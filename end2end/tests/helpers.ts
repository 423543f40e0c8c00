import { Page, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { maildir } from "../playwright.config";

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
  await expect(page.locator("[data-hydrated='true']").first()).toBeAttached();
}

/** Every message the test SMTP server received for `to` since `sinceMs`, oldest first. */
function mailsTo(to: string, sinceMs: number): string[] {
  const dir = path.join(maildir, "new");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).mtimeMs >= sinceMs - 1000)
    .sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs)
    .map((f) => fs.readFileSync(f, "utf8"))
    .filter((m) => new RegExp(`^To: ${to.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`, "mi").test(m));
}

/** The sign-in code in the newest email to `to` sent after `sinceMs`, read from the SMTP server's maildir. */
export async function mailedCode(to: string, sinceMs: number): Promise<string> {
  let code: string | undefined;
  await expect
    .poll(
      () => {
        const mails = mailsTo(to, sinceMs).filter((m) => m.includes("sign-in code"));
        const match = mails.length ? /^\s+(\d{6})\s*$/m.exec(mails[mails.length - 1]) : null;
        code = match?.[1];
        return code;
      },
      { timeout: 10_000, message: `a sign-in code mailed to ${to}` },
    )
    .toBeTruthy();
  return code!;
}

/** The subjects of the emails `to` received since `sinceMs`. */
export function subjectsTo(to: string, sinceMs: number): string[] {
  return mailsTo(to, sinceMs).map((m) => /^Subject: (.*)$/m.exec(m)?.[1]?.trim() ?? "");
}

function base32Decode(input: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of input.replace(/=+$/, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The 30-second TOTP step at `timeMs`. */
export function totpStep(timeMs = Date.now()): number {
  return Math.floor(timeMs / 1000 / 30);
}

/** What an authenticator app shows for `secret` (RFC 6238: SHA-1, 6 digits, 30 s) at step `step`. */
export function totpCode(secret: string, step = totpStep()): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, "0");
}

/** Waits until the TOTP step is later than `usedStep` (the server refuses a step twice). */
export async function nextTotpStep(usedStep: number): Promise<number> {
  while (totpStep() <= usedStep) await new Promise((r) => setTimeout(r, 250));
  return totpStep();
}

/** Steps one and two of signing in: the email, then the mailed code. Returns when the code was accepted. */
export async function enterEmailAndCode(page: Page, email: string) {
  await page.goto("/sign-in");
  await waitForHydration(page);
  await page.getByLabel("Email address").fill(email);
  const since = Date.now();
  await page.getByTestId("send-code").click();
  await expect(page.getByTestId("code-sent")).toBeVisible();
  const code = await mailedCode(email, since);
  await page.getByLabel("6-digit code from the email").fill(code);
  await page.getByTestId("verify-code").click();
}

/** Sets up the authenticator on the enrolment page; returns its secret and the step of the code used. */
export async function enrolAuthenticator(page: Page): Promise<{ secret: string; step: number; codes: string[] }> {
  await expect(page).toHaveURL(/\/sign-in\/enroll$/);
  await expect(page.locator(".qr svg")).toBeVisible();
  await page.getByText("Cannot scan? Type the secret instead").click();
  const secret = (await page.getByTestId("totp-secret").textContent())!.trim();
  const step = totpStep();
  await page.getByLabel("Enter the 6-digit code your app shows").fill(totpCode(secret, step));
  await page.getByTestId("confirm-enrollment").click();
  const list = page.getByTestId("recovery-codes").locator("li");
  await expect(list).toHaveCount(10);
  const codes = (await list.allTextContents()).map((c) => c.trim());
  return { secret, step, codes };
}
