// TeleBot operator dashboard. Plain JavaScript, no build step. Every value that comes from
// users, products or the chain is put into the page as text (textContent), never as markup;
// the bot's own messages are rendered through a small allow-list of Telegram's HTML tags.
'use strict';

const state = { me: null, panel: 'overview', timers: [], simUser: null, simVersion: 0 };
const $ = (sel) => document.querySelector(sel);

// ---- small DOM and API helpers ------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function toast(message, bad) {
  const t = el('div', { class: bad ? 'bad' : '', text: message });
  $('#toast').append(t);
  setTimeout(() => t.remove(), 4000);
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && state.me) headers['x-csrf-token'] = state.me.csrf;
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401 && !path.startsWith('/admin/api/login')) { showLogin(); throw new Error('please log in'); }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.error && (data.error.message + (data.error.field ? ' (' + data.error.field + ')' : ''))) || r.statusText);
  return data;
}

const v1 = (path) => '/api/v1' + path;
const isAdmin = () => state.me && state.me.role === 'admin';
const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : '');
const badge = (s) => el('span', { class: 'badge ' + s, text: s });

function table(columns, rows, onClick) {
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { text: c[0] })))),
    el('tbody', {}, rows.map((r) => el('tr', { class: onClick ? 'clickable' : '', onclick: onClick ? () => onClick(r) : null },
      columns.map((c) => { const v = c[1](r); return el('td', {}, v instanceof Node ? v : String(v === undefined || v === null ? '' : v)); })))));
}

function input(id, label, attrs) {
  return el('label', {}, label, el(attrs && attrs.tag === 'select' ? 'select' : attrs && attrs.tag === 'textarea' ? 'textarea' : 'input', Object.assign({ id }, attrs && attrs.tag ? {} : attrs), attrs && attrs.options ? attrs.options.map((o) => el('option', { value: o, text: o })) : []));
}

function select(id, label, options, value) {
  const s = el('select', { id }, options.map((o) => el('option', { value: o[0], text: o[1] })));
  if (value !== undefined) s.value = value;
  return el('label', {}, label, s);
}

const val = (id) => document.getElementById(id).value;

function guarded(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try { await fn(ev); } catch (e) { toast(e.message, true); }
  };
}

// ---- charts ------------------------------------------------------------------------------

function barChart(title, values, labels, format) {
  const w = 600, h = 160, pad = 24;
  const max = Math.max(1e-9, ...values);
  const bw = (w - pad) / Math.max(1, values.length);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  values.forEach((v, i) => {
    const bh = (v / max) * (h - pad);
    const r = document.createElementNS(svg.namespaceURI, 'rect');
    r.setAttribute('x', pad + i * bw + 1); r.setAttribute('y', h - pad - bh);
    r.setAttribute('width', Math.max(1, bw - 2)); r.setAttribute('height', bh);
    r.setAttribute('fill', '#2563eb');
    const t = document.createElementNS(svg.namespaceURI, 'title');
    t.textContent = labels[i] + ': ' + format(v);
    r.append(t); svg.append(r);
  });
  const axis = document.createElementNS(svg.namespaceURI, 'text');
  axis.setAttribute('x', 2); axis.setAttribute('y', 12); axis.setAttribute('font-size', 11);
  axis.textContent = format(max);
  svg.append(axis);
  return el('div', { class: 'chart' }, el('div', { class: 'muted', text: title }), svg);
}

// ---- panels ------------------------------------------------------------------------------

const panels = {
  overview: ['Overview', overview],
  products: ['Products', products],
  orders: ['Orders', orders],
  payments: ['Payments', payments],
  agents: ['Agents', agents],
  security: ['Security', security],
  subsystems: ['Subsystems', subsystems],
  bot: ['Bot', botPanel],
  simulator: ['Telegram simulator', simulator],
};

function show(name) {
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.panel = name;
  document.querySelectorAll('#nav button').forEach((b) => b.classList.toggle('active', b.dataset.panel === name));
  const root = $('#panel');
  root.replaceChildren(el('h2', { id: 'panel-title', text: panels[name][0] }));
  panels[name][1](root).catch((e) => root.append(el('p', { class: 'error', text: e.message })));
}

function every(ms, fn) { state.timers.push(setInterval(() => fn().catch(() => {}), ms)); }

async function overview(root) {
  const o = await api('GET', v1('/admin/overview'));
  const pct = (x) => (x * 100).toFixed(1) + '%';
  root.append(el('div', { class: 'cards' },
    [['Revenue today', o.today.revenue + ' USDT'], ['Orders today', o.today.orders], ['Paid today', o.today.paid_orders],
     ['Conversion today', pct(o.today.conversion)], ['Revenue, 30 days', o.last_30_days.revenue + ' USDT'],
     ['Orders, 30 days', o.last_30_days.orders], ['Conversion, 30 days', pct(o.last_30_days.conversion)],
     ['Pending payments', o.pending_payments]]
      .map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
  const labels = o.days.map((d) => new Date(d.day * 86400000).toISOString().slice(5, 10));
  root.append(el('div', { class: 'charts' },
    barChart('Revenue per day (USDT)', o.days.map((d) => Number(d.revenue)), labels, (v) => v.toFixed(2)),
    barChart('Orders per day', o.days.map((d) => d.orders), labels, (v) => String(Math.round(v))),
    barChart('Payment detection latency per day (s)', o.days.map((d) => d.detection_seconds || 0), labels, (v) => v.toFixed(1))));
}

const EMPTY_PRODUCT = { id: null, kind: 'digital', name_en: '', name_zh: '', description_en: '', description_zh: '', price: '', category_id: '', hidden: false };

async function products(root) {
  const [list, cats] = await Promise.all([api('GET', v1('/products?include_hidden=true&limit=200')), api('GET', v1('/categories'))]);
  const form = el('div', { id: 'product-form' });
  const edit = (p) => {
    form.replaceChildren(
      el('h3', { text: p.id ? 'Edit product #' + p.id : 'New product' }),
      el('div', { class: 'row' },
        input('p-name-en', 'Name (English)', { value: p.name_en }), input('p-name-zh', 'Name (中文)', { value: p.name_zh }),
        select('p-kind', 'Kind', [['digital', 'digital goods'], ['service', 'service'], ['topup', 'balance top-up']], p.kind),
        input('p-price', 'Price (USDT)', { value: p.price }),
        select('p-category', 'Category', [['', '(none)'], ...cats.map((c) => [String(c.id), c.name_en])], p.category_id ? String(p.category_id) : '')),
      el('div', { class: 'row' }, el('label', {}, 'Description (English)', el('textarea', { id: 'p-desc-en', value: p.description_en })),
        el('label', {}, 'Description (中文)', el('textarea', { id: 'p-desc-zh', value: p.description_zh }))),
      el('div', { class: 'row' }, el('label', {}, 'Hidden', el('input', { id: 'p-hidden', type: 'checkbox' })),
        el('button', { id: 'p-save', class: 'primary', onclick: guarded(async () => {
          const body = { kind: val('p-kind'), name_en: val('p-name-en'), name_zh: val('p-name-zh'), description_en: val('p-desc-en'),
            description_zh: val('p-desc-zh'), price: val('p-price'), hidden: document.getElementById('p-hidden').checked,
            category_id: val('p-category') ? Number(val('p-category')) : null };
          if (p.id) await api('PUT', v1('/products/' + p.id), body); else await api('POST', v1('/products'), body);
          toast('Saved'); show('products');
        }) }, 'Save')),
    );
    document.getElementById('p-hidden').checked = !!p.hidden;
  };
  root.append(el('div', { class: 'row' }, el('button', { id: 'p-new', onclick: () => edit(EMPTY_PRODUCT) }, 'New product')), form);
  root.append(table([
    ['#', (p) => p.id], ['Name', (p) => p.name_en], ['中文', (p) => p.name_zh], ['Kind', (p) => p.kind], ['Price', (p) => p.price],
    ['Visible', (p) => (p.hidden ? 'hidden' : 'yes')],
    ['', (p) => el('span', {},
      el('button', { onclick: (e) => { e.stopPropagation(); edit(p); } }, 'Edit'), ' ',
      el('button', { onclick: guarded(async (e) => { e.stopPropagation(); await api('PUT', v1('/products/' + p.id), Object.assign({}, pick(p), { hidden: !p.hidden })); show('products'); }) }, p.hidden ? 'Show' : 'Hide'), ' ',
      p.kind === 'digital' ? el('button', { onclick: (e) => { e.stopPropagation(); stockForm(p); } }, 'Stock') : '', ' ',
      el('button', { class: 'danger', onclick: guarded(async (e) => { e.stopPropagation(); if (!confirm('Delete ' + p.name_en + '?')) return; await api('DELETE', v1('/products/' + p.id)); show('products'); }) }, 'Delete'))],
  ], list.items));
  const stock = el('div', { id: 'stock-form' });
  root.append(stock);
  function stockForm(p) {
    stock.replaceChildren(el('h3', { text: 'Upload stock for ' + p.name_en }),
      el('label', {}, 'One item per line', el('textarea', { id: 'stock-items' })),
      el('button', { id: 'stock-save', class: 'primary', onclick: guarded(async () => {
        const items = val('stock-items').split('\n').map((s) => s.trim()).filter(Boolean);
        const r = await api('POST', v1('/products/' + p.id + '/stock'), { items });
        toast(r.added + ' added, ' + r.available + ' available'); stock.replaceChildren();
      }) }, 'Upload'));
  }
  root.append(el('h3', { text: 'Categories' }), table([['#', (c) => c.id], ['Slug', (c) => c.slug], ['English', (c) => c.name_en], ['中文', (c) => c.name_zh]], cats),
    el('div', { class: 'row' }, input('c-slug', 'Slug'), input('c-en', 'Name (English)'), input('c-zh', 'Name (中文)'),
      el('button', { onclick: guarded(async () => { await api('POST', v1('/categories'), { slug: val('c-slug'), name_en: val('c-en'), name_zh: val('c-zh') }); show('products'); }) }, 'Add category')));
}

function pick(p) {
  return { kind: p.kind, name_en: p.name_en, name_zh: p.name_zh, description_en: p.description_en, description_zh: p.description_zh,
    price: p.price, hidden: p.hidden, category_id: p.category_id, position: p.position };
}

const NEXT = { paid: ['delivered', 'in_progress', 'completed', 'refunded'], delivered: ['completed', 'refunded'],
  in_progress: ['completed', 'refunded'], completed: ['refunded'], pending_payment: ['cancelled'] };

async function orders(root) {
  const filters = el('div', { class: 'row' },
    select('o-status', 'Status', [['', 'any'], ...['pending_payment', 'paid', 'delivered', 'in_progress', 'completed', 'expired', 'cancelled', 'refunded'].map((s) => [s, s])]),
    input('o-user', 'User id'), el('button', { id: 'o-filter', onclick: guarded(() => load()) }, 'Filter'));
  const list = el('div', { id: 'orders-list' });
  const detail = el('div', { id: 'order-detail' });
  root.append(filters, list, detail);
  async function load() {
    const q = new URLSearchParams({ limit: '100' });
    if (val('o-status')) q.set('status', val('o-status'));
    if (val('o-user')) q.set('user_id', val('o-user'));
    const r = await api('GET', v1('/orders?' + q));
    list.replaceChildren(table([
      ['#', (o) => o.id], ['User', (o) => o.user_id], ['Kind', (o) => o.kind], ['Amount', (o) => o.payable_amount],
      ['Status', (o) => badge(o.status)], ['Created', (o) => fmtTime(o.created_at)],
    ], r.items, (o) => open(o.id)));
  }
  async function open(id) {
    const [o, pay, audit] = await Promise.all([api('GET', v1('/orders/' + id)), api('GET', v1('/payments/' + id)),
      api('GET', v1('/audit?entity=order&entity_id=' + id + '&limit=50'))]);
    detail.replaceChildren(el('h3', { text: 'Order #' + o.id }),
      el('p', {}, 'Status ', badge(o.status), ' · payment ', badge(pay.state), ' · ', o.payable_amount + ' USDT to ', el('code', { text: o.wallet || '' })),
      o.request_text ? el('p', {}, 'Request: ', el('span', { class: 'request', text: o.request_text })) : '',
      o.delivery ? el('p', {}, 'Delivered: ', el('code', { text: o.delivery })) : '',
      el('div', { class: 'row' }, (NEXT[o.status] || []).map((s) => el('button', { 'data-status': s, onclick: guarded(async () => {
        await api('PUT', v1('/orders/' + o.id), { status: s }); toast('Order #' + o.id + ' is now ' + s + '; the customer is told'); await load(); await open(o.id);
      }) }, 'Mark ' + s))),
      el('h3', { text: 'Timeline' }),
      table([['When', (a) => fmtTime(a.at)], ['Who', (a) => a.actor], ['What', (a) => a.action], ['After', (a) => a.after || '']], audit.items.slice().reverse()),
      pay.transfers.length ? el('div', {}, el('h3', { text: 'Transfers' }), table([['Tx', (t) => t.txid.slice(0, 16) + '…'], ['Amount', (t) => t.amount], ['Confirmed', (t) => (t.confirmed ? 'yes' : 'no')], ['Outcome', (t) => badge(t.outcome)]], pay.transfers)) : '');
  }
  await load();
}

async function payments(root) {
  const list = el('div');
  root.append(el('div', { class: 'row' }, select('t-outcome', 'Outcome', [['', 'any'], ...['matched', 'late', 'review', 'unmatched', 'assigned', 'pending'].map((s) => [s, s])]),
    el('button', { onclick: guarded(() => load()) }, 'Filter')), list, el('h3', { text: 'Chain scanners' }), el('div', { id: 'scanners' }));
  async function load() {
    const q = new URLSearchParams({ limit: '100' });
    if (val('t-outcome')) q.set('outcome', val('t-outcome'));
    const r = await api('GET', v1('/payments/transfers?' + q));
    list.replaceChildren(table([
      ['#', (t) => t.id], ['Tx', (t) => t.txid.slice(0, 14) + '…'], ['From', (t) => t.from_address], ['To', (t) => t.to_address],
      ['Amount', (t) => t.amount], ['Block time', (t) => fmtTime(t.block_time)], ['Source', (t) => t.source], ['Outcome', (t) => badge(t.outcome)],
      ['Order', (t) => t.order_id || ''],
      ['', (t) => (t.outcome === 'unmatched' || t.outcome === 'review') ? el('span', {},
        el('input', { id: 'assign-' + t.id, placeholder: 'order id', size: 6 }),
        el('button', { onclick: guarded(async () => { await api('POST', v1('/payments/transfers/' + t.id + '/assign'), { order_id: Number(val('assign-' + t.id)) }); toast('Assigned'); load(); }) }, 'Assign')) : ''],
    ], r.items));
    const s = await api('GET', v1('/admin/scanners'));
    document.getElementById('scanners').replaceChildren(table([['Source', (x) => x.source], ['Chain', (x) => x.chain], ['Head', (x) => x.head || ''],
      ['Cursor', (x) => x.cursor || ''], ['Lag (s)', (x) => x.lag_seconds], ['Errors', (x) => x.errors], ['Last error', (x) => x.last_error || '']], s));
  }
  await load();
  every(5000, load);
}

async function agents(root) {
  const [list, payouts] = await Promise.all([api('GET', v1('/agents?limit=200')), api('GET', v1('/payouts?limit=100'))]);
  const act = (a, body, label) => el('button', { onclick: guarded(async () => { await api('PUT', v1('/agents/' + a.id), body); toast(label); show('agents'); }) }, label);
  root.append(table([
    ['#', (a) => a.id], ['Name', (a) => a.name], ['Code', (a) => a.code], ['Status', (a) => badge(a.status)], ['Commission %', (a) => (a.commission_bps / 100).toFixed(2)],
    ['', (a) => el('span', {},
      a.status === 'pending' ? [act(a, { status: 'active' }, 'Approve'), ' ', act(a, { status: 'rejected' }, 'Reject')] : '',
      a.status === 'active' ? act(a, { status: 'suspended' }, 'Suspend') : '', a.status === 'suspended' ? act(a, { status: 'active' }, 'Reactivate') : '', ' ',
      el('input', { id: 'bps-' + a.id, size: 5, placeholder: 'bps' }),
      el('button', { onclick: guarded(async () => { await api('PUT', v1('/agents/' + a.id), { commission_bps: Number(val('bps-' + a.id)) }); show('agents'); }) }, 'Set rate'))],
  ], list.items));
  root.append(el('h3', { text: 'New agent' }), el('div', { class: 'row' }, input('ag-name', 'Name'), input('ag-bps', 'Commission (basis points)', { value: '1000' }),
    input('ag-address', 'Payout address (TRON)'),
    el('button', { onclick: guarded(async () => {
      const body = { name: val('ag-name'), commission_bps: Number(val('ag-bps')) };
      if (val('ag-address')) body.payout_address = val('ag-address');
      const a = await api('POST', v1('/agents'), body); toast('Referral link: ' + a.referral_link); show('agents');
    }) }, 'Create')));
  const decide = (p, s) => el('button', { onclick: guarded(async () => { await api('PUT', v1('/payouts/' + p.id), { status: s }); show('agents'); }) }, s);
  root.append(el('h3', { text: 'Payouts' }), table([['#', (p) => p.id], ['Agent', (p) => p.agent_id], ['Amount', (p) => p.amount], ['Address', (p) => p.address],
    ['Status', (p) => badge(p.status)], ['', (p) => el('span', {}, p.status === 'requested' ? [decide(p, 'approved'), ' ', decide(p, 'rejected')] : '',
      p.status === 'approved' ? [decide(p, 'paid'), ' ', decide(p, 'rejected')] : '')]], payouts.items));
}

async function security(root) {
  const bot = await api('GET', v1('/admin/bot'));
  root.append(el('div', { class: 'cards' }, [['Rate limit', bot.rate_limit_per_minute + ' / minute / user'], ['Rate-limit store', bot.rate_limit_backend],
    ['Updates refused (this instance)', bot.rate_limited]].map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
  if (isAdmin()) {
    const tokens = await api('GET', v1('/tokens'));
    const shown = el('div', { id: 'new-token' });
    root.append(el('h3', { text: 'API tokens' }), table([['#', (t) => t.id], ['Name', (t) => t.name], ['Role', (t) => t.role], ['Agent', (t) => t.agent_id || ''],
      ['Created', (t) => fmtTime(t.created_at)], ['Last used', (t) => fmtTime(t.last_used_at)], ['State', (t) => (t.revoked_at ? 'revoked' : 'live')],
      ['', (t) => t.revoked_at ? '' : el('button', { class: 'danger', onclick: guarded(async () => { await api('DELETE', v1('/tokens/' + t.id)); show('security'); }) }, 'Revoke')]], tokens),
    el('div', { class: 'row' }, input('tk-name', 'Name'), select('tk-role', 'Role', [['operator', 'operator'], ['admin', 'admin'], ['service', 'service'], ['agent', 'agent']]),
      input('tk-agent', 'Agent id (agent tokens)'),
      el('button', { id: 'tk-create', onclick: guarded(async () => {
        const body = { name: val('tk-name'), role: val('tk-role') };
        if (val('tk-agent')) body.agent_id = Number(val('tk-agent'));
        const t = await api('POST', v1('/tokens'), body);
        shown.replaceChildren(el('p', {}, 'Copy this token now; it is not shown again:'), el('div', { class: 'secret', text: t.token }));
      }) }, 'Create token')), shown);
    const accounts = await api('GET', v1('/admin/accounts'));
    root.append(el('h3', { text: 'Dashboard accounts' }), table([['#', (a) => a.id], ['Username', (a) => a.username], ['Role', (a) => a.role], ['Last login', (a) => fmtTime(a.last_login_at)]], accounts),
      el('div', { class: 'row' }, input('acc-name', 'Username'), input('acc-pass', 'Password (10+ characters)', { type: 'password' }),
        select('acc-role', 'Role', [['operator', 'operator'], ['admin', 'admin']]),
        el('button', { onclick: guarded(async () => { await api('POST', v1('/admin/accounts'), { username: val('acc-name'), password: val('acc-pass'), role: val('acc-role') }); show('security'); }) }, 'Save account')));
  }
  const log = el('div', { id: 'audit' });
  root.append(el('h3', { text: 'Audit log' }), el('div', { class: 'row' }, input('au-entity', 'Entity'), input('au-id', 'Entity id'), input('au-actor', 'Actor'), input('au-action', 'Action'),
    el('button', { onclick: guarded(() => loadAudit()) }, 'Filter')), log);
  async function loadAudit() {
    const q = new URLSearchParams({ limit: '100' });
    for (const [k, id] of [['entity', 'au-entity'], ['entity_id', 'au-id'], ['actor', 'au-actor'], ['action', 'au-action']]) if (val(id)) q.set(k, val(id));
    const r = await api('GET', v1('/audit?' + q));
    log.replaceChildren(table([['When', (a) => fmtTime(a.at)], ['Who', (a) => a.actor], ['What', (a) => a.action], ['Entity', (a) => a.entity + ' ' + a.entity_id],
      ['Before', (a) => a.before || ''], ['After', (a) => a.after || '']], r.items));
  }
  await loadAudit();
}

async function subsystems(root) {
  const holder = el('div', { id: 'tree' });
  root.append(holder);
  async function load() {
    const list = await api('GET', v1('/admin/subsystems'));
    holder.replaceChildren(el('table', { class: 'tree' },
      el('thead', {}, el('tr', {}, ['Subsystem', 'State', 'Uptime', 'Restarts', 'Last error', ''].map((h) => el('th', { text: h })))),
      el('tbody', {}, list.map((s) => el('tr', { 'data-path': s.path },
        el('td', { class: 'path', text: '\u00a0\u00a0'.repeat(s.path.split('/').length - 1) + s.path.split('/').pop() }),
        el('td', {}, badge(s.state)), el('td', { text: s.uptime_secs + ' s' }), el('td', { class: 'restarts', text: String(s.restarts) }),
        el('td', { text: s.last_error || '' }),
        el('td', {}, isAdmin() ? el('button', { 'data-restart': s.path, onclick: guarded(async () => {
          await api('POST', v1('/admin/subsystems/' + s.path.replace(/\//g, '.') + '/restart')); toast(s.path + ' restarted'); load();
        }) }, 'Restart') : ''))))));
  }
  await load();
  every(2000, load);
}

async function botPanel(root) {
  const b = await api('GET', v1('/admin/bot'));
  root.append(el('div', { class: 'cards' }, [['Mode', b.simulated ? 'simulator (demo)' : b.mode], ['Token', b.token_set ? 'configured' : 'none'],
    ['Bot', '@' + b.bot_username], ['Sessions', b.sessions_active === null ? '?' : b.sessions_active], ['Chain source', b.chain_source]]
    .map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
  const list = el('div', { id: 'broadcasts' });
  root.append(el('h3', { text: 'Broadcast to every customer' }), el('label', {}, 'Message (Telegram HTML)', el('textarea', { id: 'bc-text' })),
    el('button', { id: 'bc-send', class: 'primary', onclick: guarded(async () => {
      if (!val('bc-text').trim()) throw new Error('write a message first');
      await api('POST', v1('/admin/broadcasts'), { text: val('bc-text') }); toast('Broadcast started'); load();
    }) }, 'Send broadcast'), list);
  async function load() {
    const r = await api('GET', v1('/admin/broadcasts'));
    list.replaceChildren(table([['#', (x) => x.id], ['Text', (x) => x.text.slice(0, 60)], ['Status', (x) => badge(x.status)], ['Sent', (x) => x.sent], ['Failed', (x) => x.failed], ['Started', (x) => fmtTime(x.created_at)],
      ['', (x) => x.status === 'running' ? el('button', { onclick: guarded(async () => { await api('POST', v1('/admin/broadcasts/' + x.id + '/cancel')); load(); }) }, 'Cancel') : '']], r));
  }
  await load();
  every(2000, load);
}

// ---- Telegram simulator --------------------------------------------------------------------

const ALLOWED_TAGS = new Set(['B', 'STRONG', 'I', 'EM', 'U', 'S', 'CODE', 'PRE']);

/// The bot's Telegram HTML as DOM nodes: allowed formatting tags kept, everything else as text.
function richText(html) {
  const doc = new DOMParser().parseFromString('<body>' + html + '</body>', 'text/html');
  const walk = (node) => {
    const frag = document.createDocumentFragment();
    for (const c of node.childNodes) {
      if (c.nodeType === Node.TEXT_NODE) frag.append(document.createTextNode(c.textContent));
      else if (c.nodeType === Node.ELEMENT_NODE && ALLOWED_TAGS.has(c.tagName)) { const e = document.createElement(c.tagName.toLowerCase()); e.append(walk(c)); frag.append(e); }
      else if (c.nodeType === Node.ELEMENT_NODE) frag.append(walk(c));
    }
    return frag;
  };
  return walk(doc.body);
}

async function simulator(root) {
  if (!state.me.simulator) { root.append(el('p', { text: 'A Telegram token is configured: the simulator is off.' })); return; }
  const users = el('div', { class: 'sim-users', id: 'sim-users' });
  const chat = el('div', { class: 'chat', id: 'sim-chat' });
  // a fresh panel draws everything once
  state.simShown = null;
  state.simUsersShown = null;
  const composer = el('form', { class: 'composer', id: 'sim-composer', onsubmit: guarded(async () => {
    const text = val('sim-text');
    if (!text || !state.simUser) return;
    document.getElementById('sim-text').value = '';
    await api('POST', '/sim/api/users/' + state.simUser.id + '/messages', { text, first_name: state.simUser.first_name, language_code: state.simUser.language_code });
    await refresh();
  }) }, el('input', { id: 'sim-text', placeholder: 'Message', autocomplete: 'off' }), el('button', { class: 'primary', id: 'sim-send', type: 'submit' }, 'Send'));
  root.append(el('div', { class: 'sim' },
    el('div', {}, users, el('h3', { text: 'New customer' }), input('sim-name', 'Name', { value: 'Alex' }),
      select('sim-lang', 'Language', [['en', 'English'], ['zh', '中文']]),
      el('button', { id: 'sim-add', onclick: guarded(async () => {
        const u = { id: 100000000 + Math.floor(Math.random() * 899999999), first_name: val('sim-name') || 'Customer', language_code: val('sim-lang') };
        await api('POST', '/sim/api/users/' + u.id + '/messages', { text: '/start', first_name: u.first_name, language_code: u.language_code });
        state.simUser = u; await loadUsers(); await refresh();
      }) }, 'Start a chat')),
    el('div', {}, el('div', { id: 'sim-title', class: 'muted', text: 'Pick or start a customer chat' }), chat, composer)));
  async function loadUsers() {
    const list = await api('GET', '/sim/api/users');
    const shown = JSON.stringify([list, state.simUser && state.simUser.id]);
    if (shown === state.simUsersShown) return;
    state.simUsersShown = shown;
    users.replaceChildren(...list.map((u) => el('button', { class: state.simUser && state.simUser.id === u.id ? 'active' : '', 'data-user': u.id,
      onclick: guarded(async () => { state.simUser = u; await loadUsers(); await refresh(); }) }, u.first_name + ' (' + u.id + ')')));
  }
  async function refresh() {
    if (!state.simUser) return;
    document.getElementById('sim-title').textContent = 'Chat with ' + state.simUser.first_name + ' (' + state.simUser.id + ')';
    const r = await api('GET', '/sim/api/users/' + state.simUser.id + '/chat');
    // redraw only when something changed: a redraw replaces the buttons, and a click that
    // lands on a replaced button is lost
    const shown = state.simUser.id + ':' + r.version;
    if (shown === state.simShown) return;
    state.simShown = shown;
    const atBottom = chat.scrollTop + chat.clientHeight >= chat.scrollHeight - 20;
    chat.replaceChildren(...r.messages.map(bubble));
    if (atBottom || r.version !== state.simVersion) chat.scrollTop = chat.scrollHeight;
    state.simVersion = r.version;
  }
  function bubble(m) {
    const b = el('div', { class: 'bubble' + (m.from_bot ? '' : ' mine'), 'data-message': m.message_id });
    if (m.photo) b.append(el('img', { src: '/sim/api/files/' + encodeURIComponent(m.photo), alt: 'QR code' }));
    const text = m.text || m.caption || '';
    if (m.from_bot) b.append(el('div', { class: 'text' }, richText(text))); else b.append(el('div', { class: 'text', text }));
    if (m.edited) b.append(el('div', { class: 'edited', text: 'edited' }));
    const rows = (m.reply_markup && m.reply_markup.inline_keyboard) || [];
    if (rows.length) {
      b.append(el('div', { class: 'keyboard' }, rows.map((row) => el('div', { class: 'kbrow' }, row.map((btn) => el('button', { 'data-callback': btn.callback_data,
        onclick: guarded(async () => { await api('POST', '/sim/api/users/' + state.simUser.id + '/callbacks', { message_id: m.message_id, data: btn.callback_data }); setTimeout(refresh, 300); }) }, btn.text))))));
    }
    const order = m.from_bot && /TRC-20/.test(text) && text.match(/#(\d+)/);
    if (order && state.me.demo) {
      b.append(el('button', { class: 'primary simulate-payment', 'data-order': order[1], onclick: guarded(async () => {
        await api('POST', v1('/admin/demo/pay'), { order_id: Number(order[1]) }); toast('Payment sent on the demo chain'); setTimeout(refresh, 500);
      }) }, 'Simulate payment'));
    }
    return b;
  }
  await loadUsers();
  if (state.simUser) await refresh();
  every(1000, async () => { await refresh(); await loadUsers(); });
}

// ---- login and start-up --------------------------------------------------------------------

function showLogin() {
  state.me = null;
  state.timers.forEach(clearInterval);
  $('#app').hidden = true;
  $('#login').hidden = false;
}

function start(me) {
  state.me = me;
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#demo-banner').hidden = !me.demo;
  $('#whoami').textContent = me.name + ' (' + me.role + ')';
  $('#nav').replaceChildren(...Object.entries(panels)
    .filter(([k]) => k !== 'simulator' || me.simulator)
    .map(([k, [title]]) => el('button', { 'data-panel': k, onclick: () => show(k) }, title)));
  show(state.panel);
}

document.addEventListener('DOMContentLoaded', async () => {
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#login-error').textContent = '';
    const token = val('login-token').trim();
    const body = token ? { token } : { username: val('login-username'), password: val('login-password') };
    try { start(await api('POST', '/admin/api/login', body)); } catch (e) { $('#login-error').textContent = e.message; }
  });
  $('#logout').addEventListener('click', guarded(async () => { await api('POST', '/admin/api/logout'); showLogin(); }));
  try {
    const me = await api('GET', '/admin/api/me');
    start(me);
  } catch (e) { showLogin(); }
});
