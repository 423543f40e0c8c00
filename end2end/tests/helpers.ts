import { Page, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { maildir, secretsFile } from "../playwright.config";

/** Collects console errors and CSP violations for the whole test; assert on them at the end. */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/** Notes a secret this run used (a code, a seed, a cookie, a key): leaks.spec.ts fails if it appears in a server's
 * log or in a database file. */
export function rememberSecret(kind: string, value: string) {
  if (!value) throw new Error(`an empty ${kind} cannot be looked for`);
  fs.appendFileSync(secretsFile, JSON.stringify({ kind, value }) + "\n");
}

/** Remembers the cookies of `page`'s context (the session cookie among them) as secrets. */
export async function rememberCookies(page: Page) {
  for (const c of await page.context().cookies()) rememberSecret(`cookie ${c.name}`, c.value);
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

/** The messages the test SMTP server holds now. A step that waits for mail takes a mark first and reads only
 * what arrived after it: no clock of this process is compared with the server's. */
export function mailMark(): Set<string> {
  const dir = path.join(maildir, "new");
  return new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
}

/** Every message for `to` that arrived after `mark`, oldest first. */
function mailsTo(to: string, mark: Set<string>): string[] {
  const dir = path.join(maildir, "new");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => !mark.has(f))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs)
    .map((f) => fs.readFileSync(f, "utf8"))
    .filter((m) => new RegExp(`^To: ${to.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`, "mi").test(m));
}

/** The sign-in code in the newest email to `to` that arrived after `mark`, read from the SMTP server's maildir. */
export async function mailedCode(to: string, mark: Set<string>): Promise<string> {
  let code: string | undefined;
  await expect
    .poll(
      () => {
        const mails = mailsTo(to, mark).filter((m) => m.includes("sign-in code"));
        const match = mails.length ? /^\s+(\d{6})\s*$/m.exec(mails[mails.length - 1]) : null;
        code = match?.[1];
        return code;
      },
      { timeout: 30_000, message: `a sign-in code mailed to ${to}` },
    )
    .toBeTruthy();
  rememberSecret("sign-in code", code!);
  return code!;
}

/** The subjects of the emails `to` received after `mark`. */
export function subjectsTo(to: string, mark: Set<string>): string[] {
  return mailsTo(to, mark).map((m) => /^Subject: (.*)$/m.exec(m)?.[1]?.trim() ?? "");
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
  const code = ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, "0");
  rememberSecret("TOTP code", code);
  return code;
}

/** Seconds a TOTP code must still have in its step when it is typed: a code is never raced against the step's
 * end. (The server also accepts one step of skew either way; this keeps the test well inside that.) */
const TOTP_MARGIN_SECONDS = 10;

/** The TOTP step to type a code for now: later than `usedStep` (the server refuses a step twice), and with at
 * least TOTP_MARGIN_SECONDS left, waiting for the next step when the current one is about to end. */
export async function freshTotpStep(usedStep = -1): Promise<number> {
  const remaining = () => 30 - ((Date.now() / 1000) % 30);
  while (totpStep() <= usedStep || remaining() < TOTP_MARGIN_SECONDS) await new Promise((r) => setTimeout(r, 250));
  return totpStep();
}

/** Kept for the journeys that name it: the next usable step after `usedStep`. */
export const nextTotpStep = freshTotpStep;

/** Steps one and two of signing in: the email, then the mailed code. Returns when the code was accepted. */
export async function enterEmailAndCode(page: Page, email: string) {
  await page.goto("/sign-in");
  await waitForHydration(page);
  await page.getByLabel("Email address").fill(email);
  const mark = mailMark();
  await page.getByTestId("send-code").click();
  await expect(page.getByTestId("code-sent")).toBeVisible();
  const code = await mailedCode(email, mark);
  await page.getByLabel("6-digit code from the email").fill(code);
  await page.getByTestId("verify-code").click();
}

/** Sets up the authenticator on the enrolment page; returns its secret and the step of the code used. */
export async function enrolAuthenticator(page: Page): Promise<{ secret: string; step: number; codes: string[] }> {
  await expect(page).toHaveURL(/\/sign-in\/enroll$/);
  await expect(page.locator(".qr svg")).toBeVisible();
  await page.getByText("Cannot scan? Type the secret instead").click();
  const secret = (await page.getByTestId("totp-secret").textContent())!.trim();
  const step = await freshTotpStep();
  await page.getByLabel("Enter the 6-digit code your app shows").fill(totpCode(secret, step));
  await page.getByTestId("confirm-enrollment").click();
  const list = page.getByTestId("recovery-codes").locator("li");
  await expect(list).toHaveCount(10);
  const codes = (await list.allTextContents()).map((c) => c.trim());
  rememberSecret("TOTP seed", secret);
  for (const c of codes) rememberSecret("recovery code", c);
  return { secret, step, codes };
}
