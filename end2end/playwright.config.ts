import { defineConfig } from "@playwright/test";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import * as crypto from "node:crypto";

// The server under test: the release binary and site that `cargo leptos build --release` produced.
// scripts/test sets these; the defaults match its layout.
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), ".cache/deployclaw/target");
const serverBin = process.env.E2E_SERVER_BIN ?? path.join(targetDir, "release/deployclaw");
const siteRoot = process.env.E2E_SITE_ROOT ?? path.resolve(__dirname, "../target/site");
const port = Number(process.env.E2E_PORT ?? 3900);
// This file is evaluated by the runner and again by each worker: every path a test reads is made once, by the
// runner, and handed to the workers through the environment.
process.env.E2E_RUN_DIR ??= fs.mkdtempSync(path.join(os.tmpdir(), "deployclaw-e2e-"));
const runDir = process.env.E2E_RUN_DIR;
const dataDir = path.join(runDir, "data");
const billingDataDir = path.join(runDir, "billing-data");
/** The data directories of the two servers (their SQLite databases are read by leaks.spec.ts). */
export const dataDirs = [dataDir, billingDataDir];
/** Each server's whole log (JSON lines, level info), one file per server. */
export const serverLogs = [path.join(runDir, "server.log"), path.join(runDir, "billing-server.log")];
/** Every secret the journeys used, one JSON line each ({kind, value}): helpers.ts `rememberSecret`. */
export const secretsFile = path.join(runDir, "secrets.jsonl");

export const baseURL = `http://127.0.0.1:${port}`;

// A real SMTP server (Python's aiosmtpd; scripts/test installs it and exports its Python) that stores every
// message in a maildir the tests read sign-in codes from.
const smtpPython = process.env.DEPLOYCLAW_TEST_SMTP_PYTHON ?? path.join(os.homedir(), ".cache/deployclaw/venv-smtp/bin/python");
const smtpPort = Number(process.env.E2E_SMTP_PORT ?? 3925);
export const maildir = path.join(os.tmpdir(), `deployclaw-e2e-mail-${smtpPort}`);
/** The platform operator the server is started with (`deployclaw admin create`). */
export const operatorEmail = "ops@e2e.deployclaw.test";

// A second server with billing on, against a local Stripe stand-in (end2end/stripe-stand-in.mjs), for the billing
// journey; the key and signing secret are generated for this run.
const billingPort = Number(process.env.E2E_BILLING_PORT ?? 3901);
const stripePort = Number(process.env.E2E_STRIPE_PORT ?? 3902);
export const billingURL = `http://127.0.0.1:${billingPort}`;
const stripeKey = process.env.E2E_STRIPE_KEY ?? `sk_test_${crypto.randomBytes(16).toString("hex")}`;
const stripeSecret = process.env.E2E_STRIPE_WEBHOOK_SECRET ?? `whsec_test_${crypto.randomBytes(16).toString("hex")}`;
process.env.E2E_STRIPE_KEY = stripeKey;
process.env.E2E_STRIPE_WEBHOOK_SECRET = stripeSecret;

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: true,
  reporter: [["list"]],
  // The journeys first; then leaks.spec.ts reads what they left behind (logs, databases) for their secrets.
  projects: [
    { name: "journeys", testIgnore: /leaks\.spec\.ts$/ },
    { name: "leaks", testMatch: /leaks\.spec\.ts$/, dependencies: ["journeys"] },
  ],
  outputDir: "test-results",
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      // Debian's Chromium: Playwright's own browser download cannot work here.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: [
    {
      command: `"${smtpPython}" -m aiosmtpd -n -l 127.0.0.1:${smtpPort} -c aiosmtpd.handlers.Mailbox "${maildir}"`,
      port: smtpPort,
      timeout: 30_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `"${serverBin}" admin create ${operatorEmail} >>"${serverLogs[0]}" 2>&1 && exec "${serverBin}" serve >>"${serverLogs[0]}" 2>&1`,
      url: `${baseURL}/readyz`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        DEPLOYCLAW_DATA_DIR: dataDir,
        DEPLOYCLAW_SERVER__ADDR: `127.0.0.1:${port}`,
        DEPLOYCLAW_SERVER__SITE_ROOT: siteRoot,
        DEPLOYCLAW_MAIL__SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        DEPLOYCLAW_LOG__FORMAT: "json",
        DEPLOYCLAW_LOG__FILTER: "info",
        // Agent networks apart from the default pool: a DeployClaw already running on this machine keeps
        // its subnets and its firewall table.
        DEPLOYCLAW_RUNTIME__NETWORK_POOL: "10.210.0.0/16",
      },
    },
    {
      command: `node stripe-stand-in.mjs`,
      url: `http://127.0.0.1:${stripePort}/health`,
      timeout: 30_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
      env: {
        E2E_STRIPE_PORT: String(stripePort),
        E2E_STRIPE_KEY: stripeKey,
        E2E_STRIPE_WEBHOOK_SECRET: stripeSecret,
        E2E_STRIPE_WEBHOOK_URL: `${billingURL}/api/billing/webhook`,
      },
    },
    {
      command: `exec "${serverBin}" serve >>"${serverLogs[1]}" 2>&1`,
      url: `${billingURL}/readyz`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        DEPLOYCLAW_DATA_DIR: billingDataDir,
        DEPLOYCLAW_SERVER__ADDR: `127.0.0.1:${billingPort}`,
        DEPLOYCLAW_SERVER__SITE_ROOT: siteRoot,
        DEPLOYCLAW_MAIL__SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        DEPLOYCLAW_LOG__FORMAT: "json",
        DEPLOYCLAW_LOG__FILTER: "info",
        DEPLOYCLAW_RUNTIME__NETWORK_POOL: "10.209.0.0/16",
        DEPLOYCLAW_BILLING__STRIPE_SECRET_KEY: stripeKey,
        DEPLOYCLAW_BILLING__WEBHOOK_SECRETS: `["${stripeSecret}"]`,
        DEPLOYCLAW_BILLING__STRIPE_API_BASE: `http://127.0.0.1:${stripePort}`,
      },
    },
  ],
});
