// Headless Chromium (Debian's `chromium`) taking a screenshot of a local page: the report test
// and tools/dashboard-screenshots.mjs use the same flags.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.FT_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Writes Chromium's screenshot of the HTML file `page` at `width` × `height` to `png`. */
export function chromiumScreenshot(page, png, { width, height }) {
  const profile = mkdtempSync(join(tmpdir(), 'ft-chromium-profile-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    `--user-data-dir=${profile}`,
    `--screenshot=${png}`,
    `--window-size=${width},${height}`,
    '--hide-scrollbars',
    pathToFileURL(page).href,
  ];
  return new Promise((resolve, reject) => {
    rmSync(png, { force: true });
    execFile(CHROMIUM, args, { timeout: 90_000, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      // Chromium may exit non-zero over D-Bus noise after writing the file; the file is what counts.
      if (!existsSync(png)) reject(new Error(`chromium wrote no screenshot (${err?.message ?? 'no error'}):\n${stderr}`));
      else resolve();
    });
  });
}
