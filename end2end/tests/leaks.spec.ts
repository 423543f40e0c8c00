import { test, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { dataDirs, secretsFile, serverLogs } from "../playwright.config";

// Runs after every journey (the "leaks" project depends on "journeys"): each secret they used - sign-in codes,
// TOTP seeds and codes, recovery codes, session cookies, the provider key, the agent's gateway token, Stripe's
// key and webhook signing secret - must appear neither in either server's log (level info: every request is
// logged) nor anywhere in either server's SQLite database files (the audit table included, and the -wal file).

type Secret = { kind: string; value: string };

function secretsUsed(): Secret[] {
  const lines = fs.existsSync(secretsFile) ? fs.readFileSync(secretsFile, "utf8").split("\n") : [];
  const secrets: Secret[] = lines.filter((l) => l.trim()).map((l) => JSON.parse(l));
  secrets.push({ kind: "Stripe secret key", value: process.env.E2E_STRIPE_KEY! });
  secrets.push({ kind: "Stripe webhook secret", value: process.env.E2E_STRIPE_WEBHOOK_SECRET! });
  return secrets;
}

/** A log with each line's timestamp removed: a six-digit code must not match the microseconds of a time. */
function logText(file: string): string {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((line) => {
      try {
        const record = JSON.parse(line);
        delete record.timestamp;
        return JSON.stringify(record);
      } catch {
        return line;
      }
    })
    .join("\n");
}

/** Every byte of every database file in `dir` (`*.db`, `-wal`, `-shm`), as Latin-1 so any byte sequence is text. */
function databaseBytes(dir: string): string {
  const files = fs.readdirSync(dir).filter((f) => /\.(db|sqlite)(-wal|-shm)?$/.test(f));
  expect(files.length, `a database in ${dir}`).toBeGreaterThan(0);
  return files.map((f) => fs.readFileSync(path.join(dir, f)).toString("latin1")).join("\n");
}

test("no secret the journeys used appears in the servers' logs or databases", () => {
  const secrets = secretsUsed();
  const kinds = new Set(secrets.map((s) => s.kind));
  for (const kind of [
    "sign-in code",
    "TOTP code",
    "TOTP seed",
    "recovery code",
    "provider key",
    "agent token",
    "Stripe secret key",
    "Stripe webhook secret",
  ]) {
    expect(kinds, `the journeys noted a ${kind}`).toContain(kind);
  }
  expect(kinds, "the journeys noted the session cookie").toContain("cookie deployclaw_session");

  const logs = serverLogs.map(logText);
  const databases = dataDirs.map(databaseBytes);
  // The search can find things: the logs are the servers' (every request is logged at info), and the database
  // holds what the journeys typed that is not secret (the customer's address, an agent's name).
  for (const log of logs) expect(log).toContain("\"response\"");
  expect(databases[0]).toContain("@acme.example");
  expect(databases[0]).toContain("Acme Robotics");

  const found: string[] = [];
  for (const { kind, value } of secrets) {
    // Six-digit codes are looked for as whole numbers in the logs only: in a binary database file any six
    // digits may occur by chance. Every longer secret is looked for everywhere, byte for byte.
    // (A request id's hex may hold six digits in a row, never bounded by non-alphanumerics on both sides.)
    const short = /^\d{6}$/.test(value);
    const inLog = short
      ? (log: string) => new RegExp(`(?<![0-9A-Za-z])${value}(?![0-9A-Za-z])`).test(log)
      : (log: string) => log.includes(value);
    logs.forEach((log, i) => {
      if (inLog(log)) found.push(`${kind} in ${path.basename(serverLogs[i])}`);
    });
    if (!short) {
      databases.forEach((db, i) => {
        if (db.includes(value)) found.push(`${kind} in the database of ${path.basename(dataDirs[i])}`);
      });
    }
  }
  console.log(`looked for ${secrets.length} secrets (${kinds.size} kinds) in ${logs.length} logs and ${databases.length} databases`);
  expect(found, "secrets found where they must never be").toEqual([]);
});
