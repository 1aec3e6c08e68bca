// The admin page in a real browser (Debian's Chromium, driven by playwright-core), against a
// running admin server whose queue holds drafts for the questions named below. Run by
// tests/admin_page_test.cpp, which starts the servers and checks afterwards what reached the
// mock Telegram server; it can also be run by hand against any server:
//
//   ADMIN_URL=http://127.0.0.1:8080 ADMIN_NAME=alice ADMIN_PASSWORD=... \
//   APPROVE_QUESTION=... EDIT_QUESTION=... EDIT_TEXT=... REJECT_QUESTION=... \
//   LITERAL_TEXT='<img src=x onerror=alert(1)>' node tests/web/admin_page.mjs
//
// Optional: VIEWER_NAME and VIEWER_PASSWORD (a viewer must see no decision buttons),
// MEMORY_QUESTION, RECALLED_TEXT and PASSAGE_SOURCE (the draft answering that question was
// written with that recalled text and that passage, "source › heading", which the page must show),
// SCREENSHOT_DIR (admin-queue.png and admin-dashboard.png, 1280x800), CHROMIUM (default
// /usr/bin/chromium). Exits 0 when every step passed, 1 with the failing step's message otherwise.
import assert from 'node:assert/strict';
import path from 'node:path';
import process from 'node:process';
import {chromium} from 'playwright-core';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`the environment variable ${name} is not set`);
  return value;
}

const config = {
  url: env('ADMIN_URL'),
  name: env('ADMIN_NAME'),
  password: env('ADMIN_PASSWORD'),
  approve: env('APPROVE_QUESTION'),
  edit: env('EDIT_QUESTION'),
  editText: env('EDIT_TEXT'),
  reject: env('REJECT_QUESTION'),
  literal: env('LITERAL_TEXT'),
  memory: process.env.MEMORY_QUESTION
    ? {question: process.env.MEMORY_QUESTION, recalled: env('RECALLED_TEXT'), passage: env('PASSAGE_SOURCE')} : null,
  viewer: process.env.VIEWER_NAME ? {name: process.env.VIEWER_NAME, password: env('VIEWER_PASSWORD')} : null,
  screenshots: process.env.SCREENSHOT_DIR || '',
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
};

// Waits long enough for a loaded CI machine; these are limits, not expectations.
const WAIT = {timeout: 30_000};

// The machine has no network: these flags keep Chromium from trying to reach Google's services.
// Playwright gives every launch a fresh, temporary user-data-dir.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// What went wrong in a page besides the steps' own assertions: script errors, Content-Security-
// Policy violations, dialogs (an alert() would mean user text ran as markup).
function watch(page, problems) {
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    // Failed requests are judged below, with their address.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    // Expected: "no session yet" when the page starts, "another operator holds it" on a claim.
    const expected = (response.status() === 401 && url.pathname === '/api/session') || response.status() === 409;
    if (response.status() >= 400 && !expected) problems.push(`${response.status()} from ${url.pathname}`);
  });
  page.on('dialog', async (dialog) => {
    problems.push(`a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
}

async function signIn(page, name, password) {
  await page.goto(config.url);
  await page.locator('#signin-form').waitFor(WAIT);
  await page.locator('#signin-name').fill(name);
  await page.locator('#signin-password').fill(password);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.locator('#topbar').waitFor(WAIT);
}

const queueItem = (page, question) => page.locator('#queue-list .item', {hasText: question});

// Selects the draft answering `question` and waits until its detail shows that question.
async function openDraft(page, question) {
  await queueItem(page, question).first().click(WAIT);
  await page.locator('#queue-detail .msg.question .msg-text', {hasText: question}).waitFor(WAIT);
}

async function expectGone(page, question) {
  await queueItem(page, question).first().waitFor({state: 'detached', ...WAIT});
}

const steps = [
  ['signs in and sees the queue', async (page) => {
    await signIn(page, config.name, config.password);
    for (const question of [config.approve, config.edit, config.reject, config.literal]) {
      await queueItem(page, question).first().waitFor(WAIT);
    }
    await page.locator('#live-state.on').waitFor(WAIT);
  }],

  ['shows user text literally, never as markup', async (page) => {
    await openDraft(page, config.literal);
    const shown = await page.locator('#queue-detail .msg.question .msg-text').textContent();
    assert.equal(shown, config.literal);
    assert.equal(await page.locator('main img').count(), 0, 'an <img> element was created from user text');
  }],

  ['shows the memory a draft was written with, as text', async (page) => {
    // A draft from the recent window alone says so.
    await openDraft(page, config.approve);
    await page.locator('#memory-block', {hasText: 'No memory beyond the recent window'}).waitFor(WAIT);
    if (!config.memory) return;
    await openDraft(page, config.memory.question);
    const block = page.locator('#memory-block');
    const recalled = block.locator('.recalled li', {hasText: config.memory.recalled});
    await recalled.waitFor(WAIT);
    assert.equal(await recalled.locator('.memory-text').textContent(), config.memory.recalled);
    assert.equal(await block.locator('.passages .memory-source').first().textContent(), config.memory.passage);
    assert.equal(await page.locator('#memory-block i, #memory-block b, #memory-block img').count(), 0,
                 'an element was created from a recalled text');
  }],

  ['takes a screenshot of the queue', async (page) => {
    await openDraft(page, config.approve);
    if (config.screenshots) await page.screenshot({path: path.join(config.screenshots, 'admin-queue.png')});
  }],

  ['fits a phone: nothing wider than the screen, the decision buttons in reach', async (page) => {
    await page.setViewportSize({width: 390, height: 844});
    try {
      await openDraft(page, config.approve);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone's screen`);
      // The detail may be drawn again meanwhile (a live event): wait for the button to settle.
      const inReach = await page.waitForFunction(() => {
        const rect = document.querySelector('#approve')?.getBoundingClientRect();
        return rect && rect.width > 0 && rect.left >= 0 && rect.right <= window.innerWidth;
      }, null, WAIT).then(() => true, () => false);
      assert.ok(inReach, 'Approve is off screen');
      if (config.screenshots) {
        await page.locator('#approve').scrollIntoViewIfNeeded();
        await page.screenshot({path: path.join(config.screenshots, 'admin-queue-phone.png')});
      }
    } finally {
      await page.setViewportSize({width: 1280, height: 800});
    }
  }],

  ['approves a draft with the a key', async (page) => {
    await openDraft(page, config.approve);
    await page.locator('#approve').waitFor(WAIT);
    await page.keyboard.press('a');
    await expectGone(page, config.approve);
  }],

  ['edits a draft', async (page) => {
    await openDraft(page, config.edit);
    await page.locator('#edit').click();
    const text = page.locator('#edit-text');
    await text.waitFor(WAIT);
    assert.notEqual(await text.inputValue(), '', 'the editor is not prefilled with the draft');
    await page.keyboard.press('a');  // typing in the editor must not approve
    await text.fill(config.editText);
    await page.locator('#save-edit').click();
    await expectGone(page, config.edit);
  }],

  ['rejects a draft and a new one arrives live', async (page) => {
    await openDraft(page, config.reject);
    await page.keyboard.press('r');
    await page.locator('#reject-reason').fill('Too vague; name the exact steps.');
    await page.locator('#confirm-reject').click();
    // The rejection is done (the page has moved on) before the new draft is looked for.
    await page.locator('#notice', {hasText: 'Rejected'}).waitFor(WAIT);
    // The bot drafts again on its own; only the event stream can bring the new draft here.
    await page.locator('#queue-list .item', {hasText: config.reject}).first().waitFor(WAIT);
    await openDraft(page, config.reject);
    await page.locator('#queue-detail .draft', {hasText: 'attempt 2'}).waitFor(WAIT);
  }],

  ['draws the dashboard', async (page) => {
    await page.locator('.tabs a[data-view="stats"]').click();
    await page.locator('#stats-figures .figure').first().waitFor(WAIT);
    const charts = await page.evaluate(() => {
      const canvases = [...document.querySelectorAll('#view-stats canvas')];
      const painted = (canvas) => {
        const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
        return false;
      };
      return {
        instances: Object.keys(window.Chart?.instances ?? {}).length,
        canvases: canvases.map((c) => ({id: c.id, width: c.width, height: c.height, painted: painted(c)})),
      };
    });
    assert.equal(charts.instances, charts.canvases.length, `Chart.js drew ${charts.instances} charts`);
    for (const canvas of charts.canvases) {
      assert.ok(canvas.width > 0 && canvas.height > 0, `${canvas.id} has no size`);
      assert.ok(canvas.painted, `${canvas.id} is blank`);
    }
    if (config.screenshots) await page.screenshot({path: path.join(config.screenshots, 'admin-dashboard.png')});
  }],

  ['browses chats and the audit log', async (page) => {
    await page.locator('.tabs a[data-view="chats"]').click();
    await page.locator('#chats-list .item').first().click(WAIT);
    await page.locator('#chats-detail .history .msg').first().waitFor(WAIT);
    await page.locator('.tabs a[data-view="audit"]').click();
    await page.locator('#audit-rows tr', {hasText: 'Too vague'}).waitFor(WAIT);
  }],

  ['an admin overrides the system prompt in the settings', async (page) => {
    await page.locator('.tabs a[data-view="accounts"]').click();
    const form = page.locator('#settings-form');
    // The bot runs in review: the form shows it once the settings have loaded.
    await page.waitForFunction(
      () => document.querySelector('#settings-form select[name=policy]').value === 'review', null, WAIT);
    await form.locator('textarea[name=system_prompt]').fill('You are the support assistant of a shoe shop.');
    await form.getByRole('button', {name: 'Save settings'}).click();
    await page.locator('#notice', {hasText: 'Settings saved'}).waitFor(WAIT);
  }],

  ['signs out', async (page) => {
    await page.getByRole('button', {name: 'Sign out'}).click();
    await page.locator('#signin-form').waitFor(WAIT);
    await page.reload();
    await page.locator('#signin-form').waitFor(WAIT);
  }],
];

const viewerSteps = [
  ['a viewer sees drafts but no decision buttons', async (page) => {
    await signIn(page, config.viewer.name, config.viewer.password);
    await page.locator('#queue-detail .draft').waitFor(WAIT);
    assert.equal(await page.locator('#queue-detail button').count(), 0, 'a viewer is offered buttons');
    await page.keyboard.press('e');
    assert.equal(await page.locator('#edit-text').count(), 0, 'a viewer can open the editor');
    assert.ok(await page.locator('.tabs a[data-view="accounts"]').isHidden(), 'a viewer sees Accounts');
  }],
];

async function run(browser, list) {
  const context = await browser.newContext({viewport: {width: 1280, height: 800}, locale: 'en-GB', timezoneId: 'UTC'});
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);
  try {
    for (const [name, step] of list) {
      try {
        await step(page);
      } catch (error) {
        throw new Error(`step "${name}" failed: ${error.message}`);
      }
      assert.deepEqual(problems, [], `after step "${name}": ${problems.join('; ')}`);
      console.log(`ok - ${name}`);
    }
  } finally {
    await context.close();
  }
}

let browser;
try {
  browser = await chromium.launch({executablePath: config.chromium, headless: true, args: CHROMIUM_ARGS});
  await run(browser, steps);
  if (config.viewer) await run(browser, viewerSteps);
  console.log('admin page: all steps passed');
} catch (error) {
  console.error(`admin page: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
