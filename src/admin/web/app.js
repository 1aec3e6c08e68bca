// The operators' page of the llmassist admin server (docs/admin.md, docs/rest-api.md).
//
// Plain modern JavaScript, no framework and no build step. The server sends a strict
// Content-Security-Policy, so nothing here evaluates strings, and the page has no inline script.
// Every text that comes from users, operators or the model is put into the page with
// textContent or text nodes (see el()), never parsed as markup.
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // State and small helpers

  const state = {
    account: null,        // {name, role, ...} when signed in
    csrf: '',             // sent as X-CSRF-Token with every change
    view: '',             // the view shown
    events: null,         // the EventSource of /api/events
    queue: [],            // [{reply, chat, history}]
    selected: null,       // the id of the reply shown in the queue's detail pane
    mode: 'view',         // the queue's detail: 'view', 'edit' or 'reject'
    claimed: null,        // the id of the reply this page holds a claim on
    queueEpoch: 0,        // bumped by each decision: a queue fetched before it is stale
    handoffChat: null,    // the chat open in the handoff view
    browsedChat: null,    // the chat open in the chat browser
    chatsCursor: null,
    auditCursor: null,
    charts: [],
    memory: new Map(),    // memoryKey(reply) → what memory went into that draft (null: none)
    memoryLoading: new Set(),  // the keys being fetched
  };

  const ROLE_RANK = {viewer: 0, operator: 1, admin: 2};
  const hasRole = (role) => state.account !== null && ROLE_RANK[state.account.role] >= ROLE_RANK[role];
  const $ = (id) => document.getElementById(id);

  // Builds an element. `props` sets properties (className, type, disabled, dataset keys as
  // data-*); `on*` functions become listeners. Children are nodes or strings; strings become text
  // nodes, so user data can never turn into markup.
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2), value);
      } else if (key === 'dataset') {
        Object.assign(node.dataset, value);
      } else if (key in node && key !== 'list') {
        node[key] = value;
      } else {
        node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  const dateTime = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'});
  const relative = new Intl.RelativeTimeFormat(undefined, {numeric: 'auto'});

  // "3 min ago", with the full date in the tooltip.
  function when(iso) {
    if (!iso) return el('span', {className: 'muted'}, '—');
    const at = new Date(iso);
    const seconds = Math.round((at.getTime() - Date.now()) / 1000);
    const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [Infinity, 'week']];
    let amount = seconds;
    let text = '';
    for (const [size, unit] of steps) {
      if (Math.abs(amount) < size) {
        text = relative.format(Math.round(amount), unit);
        break;
      }
      amount /= size;
    }
    return el('time', {dateTime: iso, title: dateTime.format(at)}, Math.abs(seconds) > 30 * 86400 ? dateTime.format(at) : text);
  }

  // "operator:alice" → "alice"; other actors ("bot", "system") as they are.
  const actorName = (actor) => (actor || '').replace(/^operator:/, '');
  // Who holds a reply now: a claim whose lease ran out holds nothing.
  const holderOf = (reply) =>
    reply.claimed_by && reply.lease_until && Date.parse(reply.lease_until) > Date.now()
      ? reply.claimed_by : '';

  function chatName(chat) {
    if (!chat) return 'Unknown chat';
    return chat.title || (chat.username ? `@${chat.username}` : `${chat.channel} ${chat.external_id}`);
  }

  function notify(text, kind = 'info') {
    const box = $('notice');
    box.className = `notice ${kind}`;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 8000 : 4000);
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  // One request to the server: JSON in and out, the CSRF token on every change. A 401 outside
  // signing in means the session is gone: back to the sign-in form. Throws ApiError otherwise.
  async function api(method, path, body) {
    const headers = {Accept: 'application/json'};
    const changes = method !== 'GET' && method !== 'HEAD';
    if (changes && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'unavailable', 'The server cannot be reached.', null);
    }
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = new ApiError(response.status, data?.error?.code ?? '',
                               data?.error?.message ?? response.statusText,
                               response.headers.get('Retry-After'));
    if (response.status === 401 && path !== '/api/session') signedOut('Your session has ended. Please sign in again.');
    throw error;
  }

  const post = (path, body = {}) => api('POST', path, body);
  const query = (params) => {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') q.set(key, value);
    const text = q.toString();
    return text ? `?${text}` : '';
  };

  // Shows what went wrong, unless it was a lost session (the sign-in form says that).
  function report(error) {
    if (error instanceof ApiError && error.status === 401) return;
    notify(error.message || String(error), 'error');
    if (!(error instanceof ApiError)) console.error(error);
  }

  // Runs an action from a button: disables it while it runs, reports failures.
  async function act(button, action) {
    if (button) button.disabled = true;
    try {
      return await action();
    } catch (error) {
      report(error);
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Signing in and out

  async function start() {
    bindStatic();
    try {
      signedIn(await api('GET', '/api/session'));
    } catch (error) {
      signedOut(error.status === 401 ? '' : error.message);
    }
  }

  function signedIn(session) {
    state.account = session.account;
    state.csrf = session.csrf_token;
    $('who-name').textContent = state.account.name;
    $('who-role').textContent = state.account.role;
    document.body.dataset.role = state.account.role;
    for (const node of document.querySelectorAll('[data-role]')) node.hidden = !hasRole(node.dataset.role);
    $('view-signin').hidden = true;
    $('topbar').hidden = false;
    listen();
    route();
  }

  function signedOut(message) {
    state.account = null;
    state.csrf = '';
    state.claimed = null;
    state.events?.close();
    state.events = null;
    delete document.body.dataset.role;
    $('topbar').hidden = true;
    for (const view of document.querySelectorAll('.view')) view.hidden = true;
    $('view-signin').hidden = false;
    const error = $('signin-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('signin-name').focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const name = $('signin-name').value.trim();
    const password = $('signin-password').value;
    const error = $('signin-error');
    error.hidden = true;
    if (!name || !password) {
      error.textContent = 'Enter your name and password.';
      error.hidden = false;
      return;
    }
    const button = $('signin-submit');
    button.disabled = true;
    try {
      const session = await api('POST', '/api/session', {name, password});
      $('signin-password').value = '';
      signedIn(session);
    } catch (e) {
      if (e.status === 429) {
        error.textContent = `Too many failed attempts. Try again in ${e.retryAfter || 'a few'} seconds.`;
      } else if (e.status === 401) {
        error.textContent = 'Wrong name or password.';
      } else {
        error.textContent = e.message;
      }
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    await releaseClaim();
    try {
      await api('DELETE', '/api/session');
    } catch (error) {
      if (error.status !== 401) report(error);
    }
    signedOut('You have signed out.');
  }

  // ---------------------------------------------------------------------------------------------
  // Views and live updates

  const VIEWS = {
    queue: () => refreshQueue(),
    handoff: () => refreshHandoff(),
    chats: () => searchChats(),
    audit: () => loadAudit(true),
    stats: () => loadStats(),
    accounts: () => loadAccounts(),
    tokens: () => loadTokens(),
  };

  function route() {
    if (!state.account) return;
    let view = location.hash.slice(1) || 'queue';
    if (!(view in VIEWS) || (view === 'accounts' && !hasRole('admin'))) view = 'queue';
    if (view !== 'queue') releaseClaim();
    state.view = view;
    $('notice').hidden = true;
    for (const section of document.querySelectorAll('.view')) section.hidden = section.id !== `view-${view}`;
    for (const link of document.querySelectorAll('.tabs a')) {
      if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    VIEWS[view]().catch(report);
  }

  // Server-sent events: the queue refreshes when its set of drafts changes; an open chat when
  // anything else changes (new messages, sent answers).
  function listen() {
    state.events?.close();
    const events = new EventSource('/api/events');
    state.events = events;
    const live = $('live-state');
    events.addEventListener('open', () => { live.classList.add('on'); live.title = 'Live updates: connected'; });
    events.addEventListener('error', () => { live.classList.remove('on'); live.title = 'Live updates: reconnecting'; });
    events.addEventListener('queue', (event) => {
      const data = JSON.parse(event.data);
      showQueueCount(data.pending);
      if (state.view === 'queue') soon('queue', refreshQueue);
    });
    events.addEventListener('change', () => {
      if (state.view === 'handoff') soon('handoff', refreshHandoff);
      if (state.view === 'chats' && state.browsedChat) soon('chat', () => openBrowsedChat(state.browsedChat));
    });
  }

  // Coalesces bursts of events into one refresh.
  const pending = new Map();
  function soon(key, refresh) {
    if (pending.has(key)) return;
    pending.set(key, setTimeout(() => {
      pending.delete(key);
      refresh().catch(report);
    }, 150));
  }

  function showQueueCount(count) {
    const badge = $('queue-count');
    badge.textContent = String(count);
    badge.hidden = !count;
  }

  // ---------------------------------------------------------------------------------------------
  // The moderation queue

  async function refreshQueue() {
    const epoch = state.queueEpoch;
    const data = await api('GET', `/api/queue${query({limit: 200, history: 20})}`);
    // Fetched before a decision taken meanwhile, it would bring the decided draft back.
    if (epoch !== state.queueEpoch) return;
    state.queue = data.items;
    showQueueCount(state.queue.length);
    if (!state.queue.some((item) => item.reply.id === state.selected)) {
      state.mode = 'view';
      state.selected = state.queue[0]?.reply.id ?? null;
      if (state.selected !== null) claim(state.selected);
    }
    renderQueueList();
    if (state.mode === 'view') renderQueueDetail();
  }

  const selectedItem = () => state.queue.find((item) => item.reply.id === state.selected) ?? null;

  function questionOf(item) {
    return item.history.find((m) => m.id === item.reply.question_id)?.text ?? '';
  }

  function renderQueueList() {
    const list = $('queue-list');
    $('queue-empty').hidden = state.queue.length > 0;
    replace(list, state.queue.map((item) => {
      const {reply, chat} = item;
      const claimedBy = holderOf(reply) && holderOf(reply) !== `operator:${state.account.name}`
        ? actorName(holderOf(reply)) : '';
      return el('li', {},
        el('button', {
          type: 'button',
          className: 'item' + (reply.id === state.selected ? ' selected' : ''),
          'aria-current': reply.id === state.selected ? 'true' : null,
          dataset: {reply: String(reply.id)},
          onclick: () => select(reply.id),
        },
        el('span', {className: 'item-top'},
          el('strong', {className: 'item-title'}, chatName(chat)),
          reply.status === 'failed' ? el('span', {className: 'chip danger'}, 'failed') : null,
          claimedBy ? el('span', {className: 'chip claim'}, `claimed by ${claimedBy}`) : null),
        el('span', {className: 'item-text'}, questionOf(item) || reply.draft_text),
        el('span', {className: 'item-meta'}, when(reply.generated_at || reply.created_at))));
    }));
  }

  function renderQueueDetail() {
    const pane = $('queue-detail');
    const item = selectedItem();
    if (!item) {
      replace(pane, el('p', {className: 'empty'}, state.queue.length ? 'Choose a draft.' : ''));
      return;
    }
    const {reply, chat, history} = item;
    const mine = holderOf(reply) === `operator:${state.account.name}`;
    const holder = holderOf(reply) && !mine ? actorName(holderOf(reply)) : '';
    replace(pane,
      chatHeader(chat),
      el('ol', {className: 'history', 'aria-label': 'The chat so far'},
        history.map((m) => messageItem(m, m.id === reply.question_id))),
      el('section', {className: 'draft' + (reply.status === 'failed' ? ' failed' : ''), 'aria-label': 'The draft'},
        el('div', {className: 'draft-head'},
          el('strong', {}, reply.status === 'failed' ? 'No answer could be drafted' : 'Draft answer'),
          el('span', {className: 'muted'}, reply.provider ? `by ${reply.provider}` : '',
             reply.generation_attempts > 1 ? ` · attempt ${reply.generation_attempts}` : '')),
        reply.status === 'failed' && reply.error ? el('p', {className: 'error-text'}, reply.error) : null,
        holder ? el('p', {className: 'claim-note'}, `${holder} is deciding this one.`) : null,
        draftBody(reply),
        draftActions(reply)),
      memoryBlock(reply));
  }

  // What goes out with the draft besides its text: the files its tools attached, and the calls
  // of tools with side effects that run once it is approved.
  function draftActions(reply) {
    const files = reply.attachments || [];
    const calls = reply.deferred_calls || [];
    if (!files.length && !calls.length) return null;
    return el('ul', {className: 'draft-actions', 'aria-label': 'Sent with the answer'},
      files.map((a) => el('li', {className: 'attachment'}, `📎 ${a.file_name}`,
                          a.caption ? el('span', {className: 'muted'}, ` — ${a.caption}`) : null)),
      calls.map((c) => el('li', {className: 'deferred-call'}, `⏸ ${c.tool}`,
                          el('code', {}, ` ${c.arguments}`),
                          el('span', {className: 'muted'}, ' runs when you approve'))));
  }

  // ---------------------------------------------------------------------------------------------
  // The memory a draft was written with (GET /api/replies/{id}: "memory"), fetched once per draft:
  // a redraft has a new generated_at, and so a key of its own.

  const memoryKey = (reply) => `${reply.id}@${reply.generated_at}`;

  function memoryBlock(reply) {
    if (!reply.draft_text || !reply.generated_at) return null;
    const key = memoryKey(reply);
    const block = el('section', {id: 'memory-block', className: 'memory', 'aria-label': 'Memory used', dataset: {key}});
    if (state.memory.has(key)) {
      fillMemory(block, state.memory.get(key));
    } else {
      replace(block, el('h3', {}, 'Memory used'), el('p', {className: 'muted'}, 'Loading…'));
      loadMemory(reply.id, key);
    }
    return block;
  }

  async function loadMemory(id, key) {
    if (state.memoryLoading.has(key)) return;
    state.memoryLoading.add(key);
    let memory;
    try {
      memory = (await api('GET', `/api/replies/${id}${query({history: 0})}`)).memory ?? null;
    } catch (error) {
      if (error.status === 401) return;
      memory = {unavailable: true};
    } finally {
      state.memoryLoading.delete(key);
    }
    if (state.memory.size >= 200) state.memory.clear();
    if (!memory?.unavailable) state.memory.set(key, memory);
    const block = $('memory-block');
    if (block && block.dataset.key === key) fillMemory(block, memory);
  }

  // The first `limit` characters (not UTF-16 units) of `text`, with "…" when cut.
  function excerpt(text, limit) {
    const chars = Array.from(text || '');
    return chars.length > limit ? `${chars.slice(0, limit).join('').trimEnd()}…` : chars.join('');
  }

  const score = (value) => (typeof value === 'number' ? value.toFixed(3) : '');
  const arrayOf = (value) => (Array.isArray(value) ? value : []);

  // Every text here may be a user's words: only text nodes (el()), never markup.
  function fillMemory(block, memory) {
    const title = el('h3', {}, 'Memory used');
    if (memory?.unavailable) {
      replace(block, title, el('p', {className: 'muted'}, 'What memory went into this draft cannot be loaded now.'));
      return;
    }
    if (!memory || typeof memory !== 'object') {
      replace(block, title, el('p', {className: 'muted'}, 'No memory beyond the recent window.'));
      return;
    }
    const facts = [];
    facts.push(memory.summary_version > 0 ? `summary version ${memory.summary_version}` : 'no summary');
    if (typeof memory.window_messages === 'number') facts.push(`${memory.window_messages} recent messages`);
    if (typeof memory.estimated_tokens === 'number') facts.push(`about ${memory.estimated_tokens} tokens`);
    const recalled = arrayOf(memory.recalled).filter((r) => r && typeof r === 'object');
    const passages = arrayOf(memory.passages).filter((p) => p && typeof p === 'object');
    const dropped = arrayOf(memory.dropped).filter((d) => typeof d === 'string');
    replace(block,
      el('div', {className: 'memory-head'}, title, el('span', {className: 'muted'}, facts.join(' · '))),
      recalled.length ? el('h4', {}, 'Recalled') : null,
      recalled.length ? el('ul', {className: 'memory-list recalled'}, recalled.map((r) =>
        el('li', {},
          el('span', {className: 'memory-text'}, String(r.text ?? '')),
          el('span', {className: 'memory-meta'}, [r.kind, score(r.score)].filter(Boolean).join(' · '))))) : null,
      passages.length ? el('h4', {}, 'Knowledge') : null,
      passages.length ? el('ul', {className: 'memory-list passages'}, passages.map((p) =>
        el('li', {},
          el('span', {className: 'memory-source'}, [p.source, p.heading].filter(Boolean).map(String).join(' › ')),
          el('span', {className: 'memory-meta'}, score(p.score)),
          p.text ? el('span', {className: 'memory-text excerpt'}, excerpt(String(p.text), 160)) : null))) : null,
      dropped.length ? el('p', {className: 'memory-dropped muted'}, `Left out for the token budget: ${dropped.join(', ')}.`) : null);
  }

  function draftBody(reply) {
    if (state.mode === 'edit') {
      const text = el('textarea', {id: 'edit-text', rows: 6, 'aria-label': 'The answer to send'},);
      text.value = reply.draft_text || reply.final_text || '';
      setTimeout(() => text.focus(), 0);
      return el('form', {className: 'decide', onsubmit: (e) => { e.preventDefault(); decide('edit'); }},
        text,
        el('div', {className: 'buttons'},
          el('button', {type: 'submit', className: 'primary', id: 'save-edit'}, 'Send this answer'),
          el('button', {type: 'button', onclick: cancelMode}, 'Cancel')));
    }
    if (state.mode === 'reject') {
      const reason = el('input', {id: 'reject-reason', placeholder: 'Why? (optional, goes to the audit log)', 'aria-label': 'Reason'});
      setTimeout(() => reason.focus(), 0);
      return el('div', {},
        el('p', {className: 'draft-text'}, reply.draft_text),
        el('form', {className: 'decide', onsubmit: (e) => { e.preventDefault(); decide('reject'); }},
          reason,
          el('div', {className: 'buttons'},
            el('button', {type: 'submit', className: 'danger', id: 'confirm-reject'}, 'Reject and draft again'),
            el('button', {type: 'button', onclick: cancelMode}, 'Cancel'))));
    }
    const failed = reply.status === 'failed';
    return el('div', {},
      reply.draft_text ? el('p', {className: 'draft-text'}, reply.draft_text) : null,
      hasRole('operator') ? el('div', {className: 'buttons'},
        failed && !reply.draft_text ? null
          : el('button', {type: 'button', className: 'primary', id: 'approve', onclick: () => decide('approve')},
               'Approve', el('kbd', {}, 'a')),
        el('button', {type: 'button', id: 'edit', onclick: () => setMode('edit')},
           failed ? 'Answer by hand' : 'Edit', el('kbd', {}, 'e')),
        el('button', {type: 'button', className: 'danger-outline', id: 'reject', onclick: () => setMode('reject')},
           failed ? 'Try again' : 'Reject', el('kbd', {}, 'r'))) : null);
  }

  function setMode(mode) {
    if (!hasRole('operator') || !selectedItem()) return;
    state.mode = mode;
    renderQueueDetail();
  }

  function cancelMode() {
    state.mode = 'view';
    renderQueueDetail();
    document.querySelector(`#queue-list [data-reply="${state.selected}"]`)?.focus();
  }

  function select(id) {
    if (id === state.selected) return;
    state.selected = id;
    state.mode = 'view';
    renderQueueList();
    renderQueueDetail();
    claim(id);
  }

  function move(step) {
    if (!state.queue.length) return;
    const at = state.queue.findIndex((item) => item.reply.id === state.selected);
    const next = Math.min(state.queue.length - 1, Math.max(0, at + step));
    select(state.queue[next].reply.id);
    document.querySelector(`#queue-list [data-reply="${state.selected}"]`)?.scrollIntoView({block: 'nearest'});
  }

  // Holding the draft shown tells other operators it is taken; the claim on the one shown before
  // is given up.
  async function claim(id) {
    if (!hasRole('operator')) return;
    const previous = state.claimed;
    state.claimed = null;
    if (previous !== null && previous !== id) api('DELETE', `/api/replies/${previous}/claim`).catch(() => {});
    try {
      const reply = await post(`/api/replies/${id}/claim`, {minutes: 5});
      state.claimed = id;
      updateItem(reply);
    } catch (error) {
      if (error.status === 409 && error.code === 'aborted') {
        const holder = actorName(selectedItem() && holderOf(selectedItem().reply)) || 'Another operator';
        notify(`${holder} is deciding this one.`, 'warn');
      } else if (error.status === 409) {
        notify('This draft no longer waits for a decision.', 'warn');
      } else if (error.status !== 404) {
        report(error);
      }
    }
  }

  async function releaseClaim() {
    const id = state.claimed;
    state.claimed = null;
    if (id !== null && state.account) await api('DELETE', `/api/replies/${id}/claim`).catch(() => {});
  }

  function updateItem(reply) {
    const item = state.queue.find((i) => i.reply.id === reply.id);
    if (!item || !reply.id) return;
    item.reply = reply;
    renderQueueList();
    if (state.mode === 'view' && reply.id === state.selected) renderQueueDetail();
  }

  async function decide(decision) {
    const item = selectedItem();
    if (!item || !hasRole('operator')) return;
    const id = item.reply.id;
    let body = {};
    if (decision === 'edit') {
      body = {text: $('edit-text').value};
      if (!body.text.trim()) { notify('The answer must not be empty.', 'warn'); return; }
    } else if (decision === 'reject') {
      body = {reason: $('reject-reason').value.trim()};
    }
    const button = $(decision === 'edit' ? 'save-edit' : decision === 'reject' ? 'confirm-reject' : 'approve');
    await act(button, async () => {
      try {
        state.queueEpoch += 1;
        await post(`/api/replies/${id}/${decision}`, body);
      } catch (error) {
        state.queueEpoch += 1;
        if (error.status === 409) {
          notify(error.code === 'aborted' ? `${actorName(holderOf(item.reply)) || 'Another operator'} is deciding this one.`
                                          : 'This draft was decided already.', 'warn');
          await refreshQueue();
          return;
        }
        throw error;
      }
      // A queue fetched while the decision was on its way is stale: drop it, and fetch anew.
      state.queueEpoch += 1;
      soon('queue', refreshQueue);
      state.claimed = null;
      notify({approve: 'Approved: the answer goes out.', edit: 'Your answer goes out.',
              reject: 'Rejected: a new draft is being written.'}[decision]);
      const at = state.queue.indexOf(item);
      state.queue.splice(at, 1);
      state.mode = 'view';
      state.selected = state.queue[Math.min(at, state.queue.length - 1)]?.reply.id ?? null;
      if (state.selected !== null) claim(state.selected);
      renderQueueList();
      renderQueueDetail();
      document.querySelector(`#queue-list [data-reply="${state.selected}"]`)?.focus();
    });
  }

  function onKey(event) {
    if (state.view !== 'queue' || !state.account || event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest('input, textarea, select, [contenteditable="true"]');
    if (event.key === 'Escape' && state.mode !== 'view') {
      event.preventDefault();
      cancelMode();
      return;
    }
    if (typing) return;
    const keys = {
      j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
      a: () => { if (state.mode === 'view' && $('approve')) decide('approve'); },
      e: () => setMode('edit'), r: () => setMode('reject'),
    };
    const action = keys[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  // ---------------------------------------------------------------------------------------------
  // Chats: the header, the history, the handoff view and the chat browser

  function chatHeader(chat, ...actions) {
    return el('header', {className: 'chat-head'},
      el('div', {},
        el('h3', {}, chatName(chat)),
        el('span', {className: 'muted'},
          [chat.username ? `@${chat.username}` : '', `${chat.channel} ${chat.external_id}`].filter(Boolean).join(' · '),
          chat.mode === 'operator' ? el('span', {className: 'chip claim'}, 'operators answer') : null,
          chat.blocked ? el('span', {className: 'chip danger'}, 'blocked the bot') : null)),
      actions.length ? el('div', {className: 'buttons'}, actions) : null);
  }

  const ROLE_LABEL = {user: 'User', assistant: 'Assistant', operator: 'Operator', system: 'System'};

  function messageItem(message, highlighted = false) {
    return el('li', {className: `msg ${message.role}` + (highlighted ? ' question' : ''), dataset: {message: String(message.id)}},
      el('span', {className: 'msg-meta'},
        message.role === 'operator' && message.author ? actorName(message.author) : ROLE_LABEL[message.role] ?? message.role,
        ' · ', when(message.created_at),
        highlighted ? el('span', {className: 'chip'}, 'to answer') : null),
      el('span', {className: 'msg-text'}, message.text));
  }

  function chatListItem(chat, selected, open) {
    return el('li', {},
      el('button', {type: 'button', className: 'item' + (selected ? ' selected' : ''),
                    'aria-current': selected ? 'true' : null, dataset: {chat: String(chat.id)}, onclick: () => open(chat)},
        el('span', {className: 'item-top'},
          el('strong', {className: 'item-title'}, chatName(chat)),
          chat.mode === 'operator' ? el('span', {className: 'chip claim'}, 'handoff') : null),
        el('span', {className: 'item-text'}, [chat.username ? `@${chat.username}` : '', chat.channel].filter(Boolean).join(' · ')),
        el('span', {className: 'item-meta'}, when(chat.updated_at))));
  }

  // A page of a chat's messages, oldest first; `cursor` for older ones.
  async function chatMessages(chatId, cursor) {
    const page = await api('GET', `/api/chats/${chatId}/messages${query({limit: 50, cursor})}`);
    return {messages: page.items.slice().reverse(), next: page.next};
  }

  // The history of a chat with a "load older" button on top.
  async function historyPane(chat) {
    const list = el('ol', {className: 'history', 'aria-label': 'Messages'});
    const more = el('button', {type: 'button', className: 'more', hidden: true}, 'Load older messages');
    let cursor = null;
    const load = async () => {
      const page = await chatMessages(chat.id, cursor);
      const first = list.firstChild;
      for (const m of page.messages) list.insertBefore(messageItem(m), first);
      cursor = page.next;
      more.hidden = !cursor;
      if (!list.childElementCount) list.replaceChildren(el('li', {className: 'empty'}, 'No messages yet.'));
    };
    more.addEventListener('click', () => act(more, load));
    await load();
    return {node: el('div', {className: 'history-wrap'}, more, list), list};
  }

  async function switchChatMode(chat, path, label) {
    const updated = await post(`/api/chats/${chat.id}/${path}`);
    notify(label);
    return updated && updated.id ? updated : chat;
  }

  function handoverButton(chat, after) {
    if (!hasRole('operator')) return null;
    const toOperators = chat.mode !== 'operator';
    const button = el('button', {type: 'button', className: toOperators ? '' : 'primary'},
                      toOperators ? 'Hand over to operators' : 'Hand back to the bot');
    button.addEventListener('click', () => act(button, async () => {
      const updated = await switchChatMode(chat, toOperators ? 'handoff' : 'handback',
                                     toOperators ? 'Operators answer this chat now.' : 'The assistant answers this chat again.');
      await after(updated);
    }));
    return button;
  }

  // --- the handoff view

  async function refreshHandoff() {
    const data = await api('GET', `/api/chats${query({mode: 'operator', limit: 200})}`);
    const chats = data.items;
    $('handoff-empty').hidden = chats.length > 0;
    if (state.handoffChat && !chats.some((c) => c.id === state.handoffChat.id)) state.handoffChat = null;
    if (!state.handoffChat && chats.length) state.handoffChat = chats[0];
    replace($('handoff-list'), chats.map((c) => chatListItem(c, c.id === state.handoffChat?.id, openHandoff)));
    const pane = $('handoff-detail');
    const typing = pane.querySelector('textarea')?.value;
    if (state.handoffChat) await openHandoff(state.handoffChat, typing);
    else replace(pane);
  }

  async function openHandoff(chat, draft = '') {
    const changed = state.handoffChat?.id !== chat.id;
    state.handoffChat = chat;
    if (changed) for (const b of $('handoff-list').querySelectorAll('.item')) b.classList.toggle('selected', b.dataset.chat === String(chat.id));
    const history = await historyPane(chat);
    const pane = $('handoff-detail');
    replace(pane, chatHeader(chat, handoverButton(chat, () => refreshHandoff())), history.node,
            hasRole('operator') ? replyForm(chat, draft) : null);
    history.list.lastElementChild?.scrollIntoView({block: 'nearest'});
  }

  function replyForm(chat, draft) {
    const text = el('textarea', {rows: 3, 'aria-label': `Message to ${chatName(chat)}`, placeholder: 'Write to the user…'});
    text.value = draft || '';
    const send = el('button', {type: 'submit', className: 'primary'}, 'Send');
    return el('form', {className: 'reply-box', onsubmit: (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      act(send, async () => {
        await post(`/api/chats/${chat.id}/reply`, {text: text.value});
        text.value = '';
        notify('Sent.');
        await openHandoff(chat);
      });
    }}, text, el('div', {className: 'buttons'}, send));
  }

  // --- the chat browser

  async function searchChats(more = false) {
    const search = $('chats-search-text').value.trim();
    if (!more) state.chatsCursor = null;
    const page = await api('GET', `/api/chats${query({search, limit: 50, cursor: state.chatsCursor})}`);
    const list = $('chats-list');
    if (!more) list.replaceChildren();
    append(list, page.items.map((c) => chatListItem(c, c.id === state.browsedChat?.id, openBrowsedChat)));
    state.chatsCursor = page.next;
    $('chats-more').hidden = !page.next;
    $('chats-empty').hidden = list.childElementCount > 0;
  }

  async function openBrowsedChat(chat) {
    state.browsedChat = chat;
    for (const b of $('chats-list').querySelectorAll('.item')) b.classList.toggle('selected', b.dataset.chat === String(chat.id));
    const history = await historyPane(chat);
    replace($('chats-detail'), chatHeader(chat, handoverButton(chat, openBrowsedChat)), history.node);
  }

  // ---------------------------------------------------------------------------------------------
  // The audit log

  async function loadAudit(first) {
    if (first) state.auditCursor = null;
    const page = await api('GET', `/api/audit${query({limit: 50, cursor: state.auditCursor})}`);
    const rows = $('audit-rows');
    if (first) rows.replaceChildren();
    append(rows, page.items.map((e) => el('tr', {},
      el('td', {}, when(e.at)),
      el('td', {}, e.actor),
      el('td', {}, el('span', {className: `chip action-${e.action}`}, e.action)),
      el('td', {}, e.reply_id ?? ''),
      el('td', {}, e.chat_id ?? ''),
      el('td', {className: 'audit-detail'},
        e.detail ? el('div', {}, e.detail) : null,
        e.before ? el('div', {className: 'before'}, el('span', {className: 'muted'}, 'before: '), e.before) : null,
        e.after ? el('div', {className: 'after'}, el('span', {className: 'muted'}, 'after: '), e.after) : null))));
    state.auditCursor = page.next;
    $('audit-more').hidden = !page.next;
    $('audit-empty').hidden = rows.childElementCount > 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Statistics

  const PALETTE = ['#3554d1', '#1f9d74', '#e0a526', '#d4493f', '#7b5bd6', '#2b9ac8', '#8a8f98'];

  function seconds(ms) {
    if (ms === undefined || ms === null) return '—';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 120000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }

  function figure(label, value, detail) {
    return el('div', {className: 'figure'},
      el('span', {className: 'figure-value'}, value),
      el('span', {className: 'figure-label'}, label),
      detail ? el('span', {className: 'figure-detail'}, detail) : null);
  }

  function percent(part, whole) {
    return whole > 0 ? `${Math.round((100 * part) / whole)} %` : '—';
  }

  async function loadStats() {
    const stats = await api('GET', '/api/stats');
    $('stats-range').textContent = `${stats.from} to ${stats.to}`;
    const days = stats.days ?? [];
    const sum = (key) => days.reduce((total, d) => total + (d[key] ?? 0), 0);
    const decided = (stats.approved ?? 0) + (stats.edited ?? 0) + (stats.rejected ?? 0);
    const providerReplies = (stats.providers ?? []).reduce((t, p) => t + p.replies, 0);
    replace($('stats-figures'),
      figure('messages', sum('messages').toLocaleString(), `${sum('user_messages').toLocaleString()} from users`),
      figure('answers sent', sum('replies_sent').toLocaleString()),
      figure('response time, median', seconds(stats.response_time?.p50_ms), `95 %: ${seconds(stats.response_time?.p95_ms)}`),
      figure('moderation wait, median', seconds(stats.moderation_wait?.p50_ms), `95 %: ${seconds(stats.moderation_wait?.p95_ms)}`),
      figure('drafts approved unchanged', percent(stats.approved ?? 0, decided), `${decided} decisions`),
      figure('answered by a fallback', percent(stats.fallback_replies ?? 0, providerReplies), `${stats.fallback_replies ?? 0} replies`),
      figure('failures', String(stats.failed ?? 0), `${stats.replies_by_status?.pending ?? 0} pending now`));
    drawCharts(stats);
  }

  function drawCharts(stats) {
    for (const chart of state.charts) chart.destroy();
    state.charts = [];
    if (typeof window.Chart !== 'function') {
      notify('The chart library did not load; the figures above are complete.', 'warn');
      return;
    }
    const Chart = window.Chart;
    Chart.defaults.animation = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = '#5b6372';
    Chart.defaults.maintainAspectRatio = false;
    const days = stats.days ?? [];
    const label = (day) => new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, {month: 'short', day: 'numeric', timeZone: 'UTC'});
    state.charts.push(new Chart($('chart-days'), {
      data: {
        labels: days.map((d) => label(d.day)),
        datasets: [
          {type: 'bar', label: 'Messages', data: days.map((d) => d.messages), backgroundColor: '#c9d3f6', borderRadius: 3, order: 2},
          {type: 'line', label: 'Active users', data: days.map((d) => d.active_users), borderColor: PALETTE[1],
           backgroundColor: PALETTE[1], tension: 0.25, yAxisID: 'users', order: 1},
        ],
      },
      options: {
        interaction: {mode: 'index', intersect: false},
        scales: {
          y: {beginAtZero: true, title: {display: true, text: 'messages'}, ticks: {precision: 0}},
          users: {beginAtZero: true, position: 'right', grid: {drawOnChartArea: false}, title: {display: true, text: 'users'}, ticks: {precision: 0}},
        },
      },
    }));
    state.charts.push(doughnut($('chart-decisions'), ['Approved', 'Edited', 'Rejected'],
                               [stats.approved ?? 0, stats.edited ?? 0, stats.rejected ?? 0],
                               [PALETTE[1], PALETTE[2], PALETTE[3]]));
    const providers = stats.providers ?? [];
    state.charts.push(doughnut($('chart-providers'), providers.map((p) => p.provider || 'unknown'),
                               providers.map((p) => p.replies), PALETTE));
    const times = [stats.response_time ?? {}, stats.moderation_wait ?? {}];
    state.charts.push(new Chart($('chart-times'), {
      type: 'bar',
      data: {
        labels: ['Response time', 'Moderation wait'],
        datasets: ['p50', 'p95', 'p99'].map((p, i) => ({
          label: p === 'p50' ? 'median' : `${p.slice(1)} %`,
          data: times.map((t) => (t[`${p}_ms`] ?? 0) / 1000),
          backgroundColor: ['#3554d1', '#8ea1e6', '#d3dbf6'][i], borderRadius: 3,
        })),
      },
      options: {indexAxis: 'y', scales: {x: {beginAtZero: true, title: {display: true, text: 'seconds'}}}},
    }));
  }

  // A doughnut, or a grey ring saying "no data yet" when every value is zero.
  function doughnut(canvas, labels, values, colors) {
    const empty = values.every((v) => !v);
    return new window.Chart(canvas, {
      type: 'doughnut',
      data: {
        labels: empty ? ['No data yet'] : labels,
        datasets: [{data: empty ? [1] : values, backgroundColor: empty ? ['#e4e7ec'] : colors, borderWidth: 1}],
      },
      options: {cutout: '62%', plugins: {legend: {position: 'bottom'}, tooltip: {enabled: !empty}}},
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Accounts and API tokens

  async function loadAccounts() {
    const data = await api('GET', '/api/accounts');
    replace($('accounts-rows'), data.items.map(accountRow));
    showSettings(await api('GET', '/api/settings'));
  }

  function showSettings(settings) {
    const form = $('settings-form');
    form.policy.value = settings.policy.value;
    form.system_prompt.value = settings.system_prompt.value;
  }

  async function saveSettings(event) {
    event.preventDefault();
    const form = event.target;
    const body = {policy: form.policy.value};
    if (form.system_prompt.value.trim()) body.system_prompt = form.system_prompt.value;
    await act(form.querySelector('button[type=submit]'), async () => {
      showSettings(await api('PATCH', '/api/settings', body));
      notify('Settings saved; the bot uses them from now on.');
    });
  }

  async function resetSettings(event) {
    await act(event.target, async () => {
      showSettings(await api('PATCH', '/api/settings', {policy: null, system_prompt: null}));
      notify('Back to the config file\'s settings.');
    });
  }

  function accountRow(account) {
    const self = account.name === state.account.name;
    const role = el('select', {'aria-label': `Role of ${account.name}`, disabled: self},
      ['viewer', 'operator', 'admin'].map((r) => el('option', {value: r, selected: r === account.role}, r)));
    role.addEventListener('change', () => act(role, async () => {
      await api('PATCH', `/api/accounts/${encodeURIComponent(account.name)}`, {role: role.value});
      notify(`${account.name} is now ${role.value === 'admin' ? 'an' : 'a'} ${role.value}.`);
    }).then(loadAccounts));
    const toggle = el('button', {type: 'button', disabled: self}, account.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', () => act(toggle, async () => {
      await api('PATCH', `/api/accounts/${encodeURIComponent(account.name)}`, {disabled: !account.disabled});
      await loadAccounts();
    }));
    const remove = confirmButton('Delete', `Delete ${account.name}?`, async () => {
      await api('DELETE', `/api/accounts/${encodeURIComponent(account.name)}`);
      notify(`${account.name} was deleted.`);
      await loadAccounts();
    });
    remove.disabled = self;
    return el('tr', {},
      el('td', {}, el('strong', {}, account.name), self ? el('span', {className: 'muted'}, ' (you)') : null),
      el('td', {}, role),
      el('td', {}, account.disabled ? el('span', {className: 'chip danger'}, 'disabled') : el('span', {className: 'chip ok'}, 'active')),
      el('td', {}, when(account.last_sign_in)),
      el('td', {className: 'row-actions'}, toggle, remove));
  }

  // A button that asks again before a destructive action, in place (no browser dialog).
  function confirmButton(label, question, action) {
    const button = el('button', {type: 'button', className: 'danger-outline'}, label);
    let armed = false;
    button.addEventListener('click', () => {
      if (!armed) {
        armed = true;
        button.textContent = question;
        setTimeout(() => { armed = false; button.textContent = label; }, 4000);
        return;
      }
      act(button, action);
    });
    return button;
  }

  async function addAccount(event) {
    event.preventDefault();
    const form = event.target;
    const body = {name: form.name.value.trim(), password: form.password.value, role: form.role.value};
    await act(form.querySelector('button'), async () => {
      await post('/api/accounts', body);
      form.reset();
      notify(`${body.name} can sign in now.`);
      await loadAccounts();
    });
  }

  async function loadTokens() {
    const data = await api('GET', '/api/tokens');
    replace($('tokens-rows'), data.items.map((token) => el('tr', {},
      el('td', {}, token.label),
      el('td', {}, token.account),
      el('td', {}, when(token.created_at)),
      el('td', {}, when(token.last_used)),
      el('td', {}, token.revoked_at ? el('span', {className: 'chip danger'}, 'revoked') : el('span', {className: 'chip ok'}, 'active')),
      el('td', {className: 'row-actions'}, token.revoked_at ? null : confirmButton('Revoke', 'Revoke it?', async () => {
        await api('DELETE', `/api/tokens/${token.id}`);
        await loadTokens();
      })))));
  }

  async function addToken(event) {
    event.preventDefault();
    const form = event.target;
    const body = {label: form.label.value.trim()};
    if (hasRole('admin') && form.account.value.trim()) body.account = form.account.value.trim();
    await act(form.querySelector('button'), async () => {
      const made = await post('/api/tokens', body);
      form.reset();
      $('token-secret').hidden = false;
      const secret = $('token-secret-text');
      secret.value = made.secret;
      secret.select();
      await loadTokens();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  function bindStatic() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('chats-search').addEventListener('submit', (event) => { event.preventDefault(); searchChats().catch(report); });
    $('chats-more').addEventListener('click', (event) => act(event.target, () => searchChats(true)));
    $('audit-more').addEventListener('click', (event) => act(event.target, () => loadAudit(false)));
    $('account-form').addEventListener('submit', addAccount);
    $('settings-form').addEventListener('submit', saveSettings);
    $('settings-reset').addEventListener('click', resetSettings);
    $('token-form').addEventListener('submit', addToken);
    window.addEventListener('hashchange', route);
    document.addEventListener('keydown', onKey);
    window.addEventListener('pagehide', () => {
      // Give the claim up when the page goes away, so that the draft does not look taken.
      if (state.claimed !== null) {
        fetch(`/api/replies/${state.claimed}/claim`, {method: 'DELETE', keepalive: true,
          headers: {'X-CSRF-Token': state.csrf}, credentials: 'same-origin'}).catch(() => {});
      }
    });
  }

  document.addEventListener('DOMContentLoaded', start);
})();
