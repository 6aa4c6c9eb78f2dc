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

// One toast at a time: a new one replaces the last, and a panel change clears it.
function toast(message, bad) {
  const t = el('div', { class: bad ? 'bad' : '', text: message });
  $('#toast').replaceChildren(t);
  setTimeout(() => t.remove(), 4000);
}

// A question before something that cannot be undone; resolves true on "yes".
function confirmDialog(question, yes) {
  return new Promise((resolve) => {
    const close = (answer) => { box.remove(); resolve(answer); };
    const box = el('div', { class: 'modal', id: 'confirm' },
      el('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true' },
        el('p', { text: question }),
        el('div', { class: 'row' },
          el('button', { id: 'confirm-no', onclick: () => close(false) }, 'Keep'),
          el('button', { id: 'confirm-yes', class: 'danger', onclick: () => close(true) }, yes))));
    document.body.append(box);
    document.getElementById('confirm-no').focus();
  });
}

// A button that copies `text` and says so.
function copyButton(text, label) {
  return el('button', { class: 'copy', type: 'button', onclick: async (e) => {
    e.stopPropagation();
    try { await navigator.clipboard.writeText(text); } catch (_) {
      const t = el('textarea', { value: text }); document.body.append(t); t.select(); document.execCommand('copy'); t.remove();
    }
    toast('Copied');
  } }, label || 'Copy');
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
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    const e = new Error((data && data.error && data.error.message) || r.statusText || 'the request failed');
    e.field = data && data.error && data.error.field;
    throw e;
  }
  return data;
}

const v1 = (path) => '/api/v1' + path;
const isAdmin = () => state.me && state.me.role === 'admin';
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '');
const badge = (s) => el('span', { class: 'badge ' + s, text: String(s).replace(/_/g, ' ') });

// USDT as people read it: "12.5 USDT", exact to the last digit that is not zero.
function money(v) {
  if (v === null || v === undefined || v === '') return '';
  let s = String(v);
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s + ' USDT';
}
const price = (p) => (p.kind === 'topup' ? 'any amount' : money(p.price) + (p.stars_price ? ' · ' + p.stars_price + ' ⭐' : ''));

// Seconds as "3 d 4 h", "2 h 5 min", "4 min 10 s", "12 s".
function duration(secs) {
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return d + ' d ' + h + ' h';
  if (h) return h + ' h ' + m + ' min';
  if (m) return m + ' min ' + (s % 60) + ' s';
  return s + ' s';
}

// Who did it, in words.
function who(actor) {
  if (!actor) return '';
  if (actor === 'system') return 'TeleBot';
  const [kind, rest] = actor.split(/:(.*)/);
  return ({ user: 'customer #', token: 'API token #', dashboard: '', scanner: 'scanner ', cli: 'command line' }[kind] ?? kind + ' ') + (rest || '');
}

// The fields that changed between two JSON snapshots, as "status: paid → delivered".
function diff(before, after) {
  const parse = (s) => { try { return s ? JSON.parse(s) : {}; } catch (_) { return { value: s }; } };
  const b = parse(before), a = parse(after);
  const created = !before;
  const show = (v, k) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v)
    : /_at$|_until$/.test(k) && typeof v === 'number' ? fmtTime(v) : /amount$|^price$|^balance$/.test(k) ? money(v) : String(v));
  // a creation lists what matters of the new thing, not every column
  const skip = (k) => ['password_hash', 'updated_at', 'created_at', 'session_state'].includes(k)
    || (created && (k === 'id' || /_id$/.test(k) || ['chain', 'token', 'wallet', 'paid_from_balance', 'expires_at'].includes(k)));
  const keys = [...new Set([...Object.keys(b || {}), ...Object.keys(a || {})])]
    .filter((k) => !skip(k) && show(b[k], k) !== show(a[k], k));
  if (!keys.length) return '';
  return keys.map((k) => k.replace(/_/g, ' ') + ': ' + (k in b ? show(b[k], k) + ' → ' : '') + show(a[k], k)).join('; ');
}

// An audit entry as a sentence: "order paid by TeleBot".
function sentence(a) {
  const [entity, ...verb] = a.action.split('.');
  return entity.replace(/_/g, ' ') + ' ' + verb.join(' ').replace(/_/g, ' ') + (a.actor ? ' by ' + who(a.actor) : '');
}

function table(columns, rows, onClick, empty) {
  if (!rows.length) return el('p', { class: 'empty muted', text: empty || 'Nothing here yet.' });
  return el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { text: c[0] })))),
    el('tbody', {}, rows.map((r) => el('tr', { class: onClick ? 'clickable' : '', onclick: onClick ? () => onClick(r) : null },
      columns.map((c) => { const v = c[1](r); return el('td', {}, v instanceof Node ? v : String(v === undefined || v === null ? '' : v)); }))))));
}

function input(id, label, attrs) {
  return el('label', { 'data-field': attrs && attrs.field }, label, el(attrs && attrs.tag === 'select' ? 'select' : attrs && attrs.tag === 'textarea' ? 'textarea' : 'input', Object.assign({ id }, attrs && attrs.tag ? {} : attrs), attrs && attrs.options ? attrs.options.map((o) => el('option', { value: o, text: o })) : []));
}

function select(id, label, options, value) {
  const s = el('select', { id }, options.map((o) => el('option', { value: o[0], text: o[1] })));
  if (value !== undefined) s.value = value;
  return el('label', {}, label, s);
}

const val = (id) => document.getElementById(id).value;

// Shows an error next to the input it is about (its label carries data-field), or as a toast.
function fail(e) {
  document.querySelectorAll('.field-error').forEach((x) => x.remove());
  const label = e.field && document.querySelector('#panel [data-field="' + CSS.escape(e.field) + '"]');
  if (label) label.append(el('span', { class: 'field-error', role: 'alert', text: e.message }));
  else toast(e.message, true);
}

function guarded(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    document.querySelectorAll('.field-error').forEach((x) => x.remove());
    try { await fn(ev); } catch (e) { fail(e); }
  };
}

// ---- charts ------------------------------------------------------------------------------

// A daily series as a uPlot chart: dates on the axis, gridlines, the value under the cursor,
// and a sentence instead of an empty frame when there is nothing to draw.
function dailyChart(title, label, days, value, format, emptyText, integer) {
  const holder = el('div', { class: 'chart' }, el('div', { class: 'chart-title', text: title }));
  const ys = days.map(value);
  if (!ys.some((y) => y > 0) || typeof uPlot === 'undefined') {
    holder.append(el('p', { class: 'empty muted', text: emptyText }));
    return holder;
  }
  const plot = el('div', { class: 'plot' });
  holder.append(plot);
  const xs = days.map((d) => d.day * 86400);
  requestAnimationFrame(() => {
    const width = Math.max(260, plot.clientWidth || 360);
    // eslint-disable-next-line no-new
    new uPlot({
      width, height: 190,
      scales: { x: { time: true } },
      series: [
        { label: 'Day', value: (u, ts) => (ts == null ? '' : new Date(ts * 1000).toLocaleDateString([], { month: 'short', day: 'numeric' })) },
        { label, stroke: '#2563eb', fill: 'rgba(37, 99, 235, .12)', width: 2, points: { size: 5 }, value: (u, v) => (v == null ? '' : format(v)) },
      ],
      axes: [
        { grid: { stroke: '#e5e7eb' }, values: (u, ts) => ts.map((t) => new Date(t * 1000).toLocaleDateString([], { month: 'short', day: 'numeric' })) },
        Object.assign({ grid: { stroke: '#e5e7eb' }, size: 60, values: (u, vs) => vs.map((v) => format(v)) },
          integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] } : {}),
      ],
    }, [xs, ys], plot);
  });
  return holder;
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

// Every panel (and every order) has its own address: #/orders/42. Reload, back and bookmarks
// land where they point.
function route() {
  const [panel, arg] = location.hash.replace(/^#\/?/, '').split('/');
  return { panel: panels[panel] && (panel !== 'simulator' || (state.me && state.me.simulator)) ? panel : 'overview', arg: arg || null };
}

function go(panel, arg) {
  const hash = '#/' + panel + (arg ? '/' + arg : '');
  if (location.hash === hash) render(); else location.hash = hash;
}

// Draws the panel the address names.
function render() {
  const { panel, arg } = route();
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.panel = panel;
  $('#toast').replaceChildren();
  document.body.classList.remove('nav-open');
  document.querySelectorAll('#nav button').forEach((b) => b.classList.toggle('active', b.dataset.panel === panel));
  const root = $('#panel');
  root.replaceChildren(el('h2', { id: 'panel-title', text: panels[panel][0] }));
  document.title = panels[panel][0] + ' · TeleBot';
  panels[panel][1](root, arg).catch((e) => root.append(el('p', { class: 'error', text: e.message })));
}

// Redraws the current panel (after a change it shows).
const show = (name) => (name === state.panel ? render() : go(name));

function every(ms, fn) { state.timers.push(setInterval(() => fn().catch(() => {}), ms)); }

/// Whole Telegram Stars as the dashboard shows them.
const stars = (n) => (n || 0) + ' ⭐';
/// What an order costs, in its currency.
const orderAmount = (o) => (o.payment_method === 'stars' ? stars(o.stars) : money(o.payable_amount));

async function overview(root) {
  const o = await api('GET', v1('/admin/overview'));
  const pct = (x) => (x * 100).toFixed(1) + '%';
  root.append(el('div', { class: 'cards' },
    [['Revenue today', money(o.today.revenue)], ['Stars revenue today', stars(o.today.stars_revenue)], ['Orders today', o.today.orders], ['Paid today', o.today.paid_orders],
     ['Conversion today', pct(o.today.conversion)], ['Revenue, 30 days', money(o.last_30_days.revenue)], ['Stars revenue, 30 days', stars(o.last_30_days.stars_revenue)],
     ['Orders, 30 days', o.last_30_days.orders], ['Conversion, 30 days', pct(o.last_30_days.conversion)],
     ['Pending payments', o.pending_payments]]
      .map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
  root.append(el('p', { class: 'muted', text: 'Sales only: balance top-ups are not counted in revenue, orders or conversion. USDT and Telegram Stars are counted apart, never added together.' }));
  root.append(el('div', { class: 'charts', id: 'charts' },
    dailyChart('Revenue per day (USDT)', 'Revenue', o.days, (d) => Number(d.revenue), (v) => money(+v.toFixed(6)).replace(' USDT', ''), 'No sales in the last 30 days yet.'),
    dailyChart('Stars revenue per day', 'Stars revenue', o.days, (d) => d.stars_revenue, (v) => String(Math.round(v)) + ' ⭐', 'No Stars sales in the last 30 days yet.', true),
    dailyChart('Orders per day', 'Orders', o.days, (d) => d.orders, (v) => String(Math.round(v)), 'No orders in the last 30 days yet.', true),
    dailyChart('Payment detection, seconds (daily average)', 'Detection', o.days, (d) => d.detection_seconds || 0, (v) => v.toFixed(1) + ' s', 'No payments detected in the last 30 days yet.')));
}

const EMPTY_PRODUCT = { id: null, kind: 'digital', name_en: '', name_zh: '', description_en: '', description_zh: '', price: '', stars_price: null, category_id: '', hidden: false };

async function products(root) {
  const [list, cats] = await Promise.all([api('GET', v1('/products?include_hidden=true&limit=200')), api('GET', v1('/categories'))]);
  const stockLeft = {};
  await Promise.all(list.items.filter((p) => p.kind === 'digital').map(async (p) => {
    stockLeft[p.id] = (await api('GET', v1('/products/' + p.id + '/stock'))).available;
  }));
  const form = el('div', { id: 'product-form' });
  const edit = (p) => {
    form.replaceChildren(
      el('h3', { text: p.id ? 'Edit product #' + p.id : 'New product' }),
      el('div', { class: 'row' },
        input('p-name-en', 'Name (English)', { value: p.name_en, field: 'name_en' }), input('p-name-zh', 'Name (中文)', { value: p.name_zh, field: 'name_zh' }),
        select('p-kind', 'Kind', [['digital', 'digital goods'], ['service', 'service'], ['topup', 'balance top-up']], p.kind),
        input('p-price', 'Price (USDT)', { value: p.kind === 'topup' ? '0' : (p.price ? money(p.price).replace(' USDT', '') : ''), field: 'price' }),
        input('p-stars', 'Price (Telegram Stars, whole)', { value: p.stars_price == null ? '' : String(p.stars_price), field: 'stars_price', placeholder: 'e.g. 100' }),
        select('p-category', 'Category', [['', '(none)'], ...cats.map((c) => [String(c.id), c.name_en])], p.category_id ? String(p.category_id) : '')),
      el('div', { class: 'row' }, el('label', {}, 'Description (English)', el('textarea', { id: 'p-desc-en', value: p.description_en })),
        el('label', {}, 'Description (中文)', el('textarea', { id: 'p-desc-zh', value: p.description_zh }))),
      el('div', { class: 'row' }, el('label', {}, 'Hidden', el('input', { id: 'p-hidden', type: 'checkbox' })),
        el('button', { id: 'p-save', class: 'primary', onclick: guarded(async () => {
          const body = { kind: val('p-kind'), name_en: val('p-name-en'), name_zh: val('p-name-zh'), description_en: val('p-desc-en'),
            description_zh: val('p-desc-zh'), price: val('p-price'), hidden: document.getElementById('p-hidden').checked,
            stars_price: starsField(val('p-stars')),
            category_id: val('p-category') ? Number(val('p-category')) : null };
          if (p.id) await api('PUT', v1('/products/' + p.id), body); else await api('POST', v1('/products'), body);
          toast('Saved'); show('products');
        }) }, 'Save')),
    );
    document.getElementById('p-hidden').checked = !!p.hidden;
  };
  root.append(el('div', { class: 'row' }, el('button', { id: 'p-new', onclick: () => edit(EMPTY_PRODUCT) }, 'New product')), form);
  root.append(table([
    ['#', (p) => p.id], ['Name', (p) => p.name_en], ['中文', (p) => p.name_zh], ['Kind', (p) => p.kind], ['Price', price],
    ['In stock', (p) => (p.kind === 'digital' ? (stockLeft[p.id] ?? '…') : '—')],
    ['Visible', (p) => (p.hidden ? 'hidden' : 'yes')],
    ['', (p) => el('span', {},
      el('button', { onclick: (e) => { e.stopPropagation(); edit(p); } }, 'Edit'), ' ',
      el('button', { onclick: guarded(async (e) => { e.stopPropagation(); await api('PUT', v1('/products/' + p.id), Object.assign({}, pick(p), { hidden: !p.hidden })); show('products'); }) }, p.hidden ? 'Show' : 'Hide'), ' ',
      p.kind === 'digital' ? el('button', { onclick: (e) => { e.stopPropagation(); stockForm(p); } }, 'Stock') : '', ' ',
      el('button', { class: 'danger', onclick: guarded(async (e) => { e.stopPropagation(); if (!await confirmDialog('Delete ' + p.name_en + '? Customers can no longer buy it.', 'Delete')) return; await api('DELETE', v1('/products/' + p.id)); show('products'); }) }, 'Delete'))],
  ], list.items, null, 'No products yet: add the first one above.'));
  const stock = el('div', { id: 'stock-form' });
  root.append(stock);
  function stockForm(p) {
    stock.replaceChildren(el('h3', { text: 'Upload stock for ' + p.name_en }),
      el('label', { 'data-field': 'items' }, 'One item per line (each is sold once; a line repeated, or already in stock, is refused)', el('textarea', { id: 'stock-items' })),
      el('button', { id: 'stock-save', class: 'primary', onclick: guarded(async () => {
        const items = val('stock-items').split('\n').map((s) => s.trim()).filter(Boolean);
        const r = await api('POST', v1('/products/' + p.id + '/stock'), { items });
        toast(r.added + ' added, ' + r.available + ' in stock'); stock.replaceChildren(); show('products');
      }) }, 'Upload'));
  }
  root.append(el('h3', { text: 'Categories' }), table([['#', (c) => c.id], ['Slug', (c) => c.slug], ['English', (c) => c.name_en], ['中文', (c) => c.name_zh]], cats),
    el('div', { class: 'row' }, input('c-slug', 'Slug'), input('c-en', 'Name (English)'), input('c-zh', 'Name (中文)'),
      el('button', { onclick: guarded(async () => { await api('POST', v1('/categories'), { slug: val('c-slug'), name_en: val('c-en'), name_zh: val('c-zh') }); show('products'); }) }, 'Add category')));
}

function pick(p) {
  return { kind: p.kind, name_en: p.name_en, name_zh: p.name_zh, description_en: p.description_en, description_zh: p.description_zh,
    price: p.price, stars_price: p.stars_price, hidden: p.hidden, category_id: p.category_id, position: p.position };
}

/// The Stars price field: empty is none; anything else goes to the API as typed, so a wrong
/// value is refused there with its reason beside the field.
function starsField(text) {
  const t = text.trim();
  if (!t) return null;
  return /^\d+$/.test(t) ? Number(t) : t;
}

const NEXT = { paid: ['delivered', 'in_progress', 'completed', 'refunded'], delivered: ['completed', 'refunded'],
  in_progress: ['completed', 'refunded'], completed: ['refunded'], pending_payment: ['cancelled'] };

async function orders(root, openId) {
  const filters = el('form', { class: 'row', onsubmit: guarded(() => load()) },
    select('o-status', 'Status', [['', 'any'], ...['pending_payment', 'paid', 'delivered', 'in_progress', 'completed', 'expired', 'cancelled', 'refunded'].map((s) => [s, s.replace(/_/g, ' ')])]),
    input('o-user', 'Customer: Telegram id, or #id', { field: 'customer', placeholder: 'e.g. 123456789 or #12' }),
    el('button', { id: 'o-filter', type: 'submit' }, 'Filter'));
  const list = el('div', { id: 'orders-list' });
  const detail = el('div', { id: 'order-detail' });
  root.append(filters, list, detail);
  const products = new Map((await api('GET', v1('/products?include_hidden=true&limit=200'))).items.map((p) => [p.id, p]));
  const product = (o) => { const p = products.get(o.product_id); const name = p ? p.name_en : 'product #' + o.product_id; return o.kind === 'topup' ? name : name + ' × ' + o.quantity; };
  async function load() {
    const q = new URLSearchParams({ limit: '100' });
    if (val('o-status')) q.set('status', val('o-status'));
    const wanted = val('o-user').trim();
    if (wanted) {
      const m = wanted.match(/^(#?)(\d{1,18})$/);
      if (!m) { const e = new Error("a customer's Telegram id (digits), or # and the internal id"); e.field = 'customer'; throw e; }
      if (m[1]) q.set('user_id', m[2]);
      else {
        const found = await api('GET', v1('/users?telegram_id=' + m[2]));
        if (!found.items.length) { list.replaceChildren(el('p', { class: 'empty muted', text: 'No customer has Telegram id ' + m[2] + '.' })); return; }
        q.set('user_id', String(found.items[0].id));
      }
    }
    const r = await api('GET', v1('/orders?' + q));
    await users(r.items.map((o) => o.user_id));
    list.replaceChildren(table([
      ['#', (o) => o.id], ['Customer', (o) => customer(o.user_id)], ['Product', product], ['Amount', orderAmount],
      ['Status', (o) => badge(o.status)], ['Created', (o) => fmtTime(o.created_at)],
    ], r.items, (o) => go('orders', o.id), 'No orders match.'));
  }
  async function open(id) {
    const [o, pay, audit] = await Promise.all([api('GET', v1('/orders/' + id)), api('GET', v1('/payments/' + id)),
      api('GET', v1('/audit?entity=order&entity_id=' + id + '&limit=50'))]);
    await users([o.user_id]);
    detail.replaceChildren(el('h3', { text: 'Order #' + o.id }),
      el('p', {}, customer(o.user_id), ' · ', product(o), ' · ', badge(o.status), ' · payment ', badge(pay.state)),
      o.payment_method === 'stars'
        ? el('p', {}, 'Pays ', el('strong', { text: stars(o.stars) }), ' with Telegram Stars · created ', fmtTime(o.created_at))
        : el('p', {}, 'Pays ', el('strong', { text: money(o.payable_amount) }), ' to ', el('code', { class: 'wrap', text: o.wallet || '' }), ' · created ', fmtTime(o.created_at)),
      o.request_text ? el('p', {}, 'Request: ', el('span', { class: 'request', text: o.request_text })) : '',
      o.delivery ? el('p', {}, 'Delivered: ', el('code', { class: 'wrap', text: o.delivery })) : '',
      el('div', { class: 'row' }, (NEXT[o.status] || []).filter((s) => s !== 'refunded').map((s) => el('button', { 'data-status': s, onclick: guarded(async () => {
        await api('PUT', v1('/orders/' + o.id), { status: s }); toast('Order #' + o.id + ' is now ' + s.replace(/_/g, ' ') + '; the customer is told'); await load(); await open(o.id);
      }) }, 'Mark ' + s.replace(/_/g, ' '))),
        (NEXT[o.status] || []).includes('refunded') && o.kind !== 'topup' ? el('button', { class: 'danger', id: 'order-refund', onclick: guarded(async () => {
          const how = o.payment_method === 'stars' ? stars(o.stars) + ' go back to the customer through Telegram' : money(o.price) + ' is credited to the customer\'s balance';
          if (!await confirmDialog('Refund order #' + o.id + '? ' + how + '.', 'Refund')) return;
          const r = await api('POST', v1('/orders/' + o.id + '/refund'));
          toast('Order #' + o.id + ' refunded' + (r.telegram === 'already_refunded' ? ' (Telegram had refunded the Stars already)' : '') + '; the customer is told');
          await load(); await open(o.id);
        }) }, 'Refund') : ''),
      el('h3', { text: 'Timeline' }),
      el('ol', { class: 'timeline', id: 'order-timeline' }, audit.items.slice().reverse().map((a) => el('li', { 'data-action': a.action },
        el('time', { text: fmtTime(a.at) }), ' ', el('span', { class: 'what', text: sentence(a) }), diff(a.before, a.after) ? el('div', { class: 'change muted', text: diff(a.before, a.after) }) : ''))),
      pay.transfers.length ? el('div', {}, el('h3', { text: 'Transfers' }), table([['Tx', (t) => t.txid.slice(0, 16) + '…'], ['Amount', (t) => money(t.amount)], ['Confirmed', (t) => (t.confirmed ? 'yes' : 'no')], ['Outcome', (t) => badge(t.outcome)]], pay.transfers)) : '');
  }
  await load();
  if (openId) await open(openId);
}

// Customers by internal id, fetched once per page view.
const userCache = new Map();
async function users(ids) {
  await Promise.all([...new Set(ids)].filter((id) => !userCache.has(id)).map(async (id) => {
    try { userCache.set(id, await api('GET', v1('/users/' + id))); } catch (_) { userCache.set(id, null); }
  }));
}
function customer(id) {
  const u = userCache.get(id);
  if (!u) return 'customer #' + id;
  return el('span', { class: 'customer' }, u.first_name || 'customer', ' ', el('span', { class: 'muted', text: (u.username ? '@' + u.username + ' · ' : '') + 'tg ' + u.telegram_id }));
}

async function payments(root) {
  const list = el('div');
  root.append(el('div', { id: 'revenue-split' }), el('div', { class: 'row' }, select('t-outcome', 'Outcome', [['', 'any'], ...['matched', 'late', 'review', 'unmatched', 'assigned', 'pending'].map((s) => [s, s])]),
    el('button', { onclick: guarded(() => load()) }, 'Filter')), list,
    el('h3', { text: 'Telegram Stars payments' }), el('p', { class: 'muted', text: 'Every successful_payment Telegram reported. Unmatched ones paid no order: refund them.' }), el('div', { id: 'stars-payments' }),
    el('h3', { text: 'Chain scanners' }), el('div', { id: 'scanners' }));
  async function load() {
    const q = new URLSearchParams({ limit: '100' });
    if (val('t-outcome')) q.set('outcome', val('t-outcome'));
    const r = await api('GET', v1('/payments/transfers?' + q));
    list.replaceChildren(table([
      ['#', (t) => t.id], ['Tx', (t) => el('code', { title: t.txid, text: t.txid.slice(0, 14) + '…' })], ['From', (t) => el('code', { class: 'wrap', text: t.from_address })], ['To', (t) => el('code', { class: 'wrap', text: t.to_address })],
      ['Amount', (t) => money(t.amount)], ['Block time', (t) => fmtTime(t.block_time)], ['Source', (t) => t.source], ['Outcome', (t) => badge(t.outcome)],
      ['Order', (t) => t.order_id || ''],
      ['', (t) => (t.outcome === 'unmatched' || t.outcome === 'review') ? el('span', {},
        el('input', { id: 'assign-' + t.id, placeholder: 'order id', size: 6 }),
        el('button', { onclick: guarded(async () => {
          const order = val('assign-' + t.id).trim().replace(/^#/, '');
          if (!/^\d+$/.test(order)) throw new Error('the number of the pending order this transfer pays');
          await api('POST', v1('/payments/transfers/' + t.id + '/assign'), { order_id: Number(order) }); toast('Transfer #' + t.id + ' paid order #' + order); load();
        }) }, 'Assign')) : ''],
    ], r.items, null, 'No transfers match.'));
    const o = await api('GET', v1('/admin/overview'));
    document.getElementById('revenue-split').replaceChildren(el('div', { class: 'cards' },
      [['USDT revenue, 30 days', money(o.last_30_days.revenue)], ['Stars revenue, 30 days', stars(o.last_30_days.stars_revenue)]]
        .map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
    const sp = await api('GET', v1('/stars/payments?limit=100'));
    document.getElementById('stars-payments').replaceChildren(table([
      ['#', (p) => p.id], ['Customer', (p) => 'tg ' + p.telegram_id], ['Stars', (p) => stars(p.total_amount)], ['Currency', (p) => p.currency],
      ['Outcome', (p) => badge(p.outcome)], ['Why', (p) => p.problem || ''], ['Order', (p) => p.order_id || ''], ['At', (p) => fmtTime(p.created_at)],
      ['', (p) => (p.refunded_at ? 'refunded ' + fmtTime(p.refunded_at) : el('button', { class: p.outcome === 'unmatched' ? 'danger' : '', 'data-stars-refund': p.id, onclick: guarded(async () => {
        if (!await confirmDialog('Give ' + stars(p.total_amount) + ' back to Telegram user ' + p.telegram_id + '?' + (p.outcome === 'credited' ? ' Order #' + p.order_id + ' becomes refunded.' : ''), 'Refund')) return;
        const r = await api('POST', v1('/stars/payments/' + p.id + '/refund'));
        toast('Stars payment #' + p.id + ' refunded' + (r.telegram === 'already_refunded' ? ' (Telegram had refunded it already)' : '')); load();
      }) }, 'Refund'))],
    ], sp.items, null, 'No Stars payments yet.'));
    const s = await api('GET', v1('/admin/scanners'));
    document.getElementById('scanners').replaceChildren(table([['Source', (x) => x.source], ['Chain', (x) => x.chain], ['Head', (x) => x.head || ''],
      ['Cursor', (x) => x.cursor || ''], ['Lag (s)', (x) => x.lag_seconds], ['Errors', (x) => x.errors], ['Last error', (x) => x.last_error || '']], s));
  }
  await load();
  every(5000, load);
}

async function agents(root) {
  const [list, payouts] = await Promise.all([api('GET', v1('/agents?limit=200')), api('GET', v1('/payouts?limit=100'))]);
  // the referral link and the figures of each agent
  const views = new Map(await Promise.all(list.items.map(async (a) => [a.id, await api('GET', v1('/agents/' + a.id))])));
  const act = (a, body, label) => el('button', { onclick: guarded(async () => { await api('PUT', v1('/agents/' + a.id), body); toast(label + ': done'); show('agents'); }) }, label);
  const pct = (bps) => (bps / 100).toString() + ' %';
  const toBps = (id) => {
    const raw = val(id).trim().replace(',', '.').replace(/%$/, '').trim();
    const v = Number(raw);
    if (!raw || !Number.isFinite(v) || v < 0 || v > 100) { const e = new Error('a percentage from 0 to 100, e.g. 10 or 7.5'); e.field = 'commission_bps'; throw e; }
    return Math.round(v * 100);
  };
  root.append(table([
    ['#', (a) => a.id], ['Name', (a) => a.name], ['Status', (a) => badge(a.status)], ['Commission', (a) => pct(a.commission_bps)],
    ['Referral link', (a) => { const v = views.get(a.id); return v ? el('span', { class: 'link' }, el('code', { class: 'wrap', text: v.referral_link }), ' ', copyButton(v.referral_link)) : ''; }],
    ['Customers', (a) => (views.get(a.id) || {}).stats?.referred_users ?? ''],
    ['Sales', (a) => { const st = (views.get(a.id) || {}).stats; return st ? st.paid_orders + ' · ' + money(st.sales) : ''; }],
    ['Commission pending / available / paid', (a) => { const st = (views.get(a.id) || {}).stats; return st ? [st.pending, st.available, st.paid].map(money).join(' / ') : ''; }],
    ['', (a) => el('span', {},
      a.status === 'pending' ? [act(a, { status: 'active' }, 'Approve'), ' ', act(a, { status: 'rejected' }, 'Reject')] : '',
      a.status === 'active' ? act(a, { status: 'suspended' }, 'Suspend') : '', a.status === 'suspended' ? act(a, { status: 'active' }, 'Reactivate') : '', ' ',
      el('label', { 'data-field': 'commission_bps' }, el('input', { id: 'rate-' + a.id, size: 4, placeholder: '%' })),
      el('button', { onclick: guarded(async () => { await api('PUT', v1('/agents/' + a.id), { commission_bps: toBps('rate-' + a.id) }); show('agents'); }) }, 'Set %'))],
  ], list.items, null, 'No agents yet.'));
  const made = el('div', { id: 'new-agent' });
  root.append(el('h3', { text: 'New agent' }), el('form', { class: 'row', onsubmit: guarded(async () => {
      const body = { name: val('ag-name'), commission_bps: toBps('ag-rate') };
      if (val('ag-address')) body.payout_address = val('ag-address');
      const a = await api('POST', v1('/agents'), body);
      show('agents');
      toast('Agent ' + a.name + ' created');
    }) }, input('ag-name', 'Name', { field: 'name' }), input('ag-rate', 'Commission (%)', { value: '10', field: 'commission_bps' }),
    input('ag-address', 'Payout address (TRON)', { field: 'payout_address' }), el('button', { type: 'submit' }, 'Create')), made);
  const decide = (p, s) => el('button', { onclick: guarded(async () => { await api('PUT', v1('/payouts/' + p.id), { status: s }); show('agents'); }) }, s);
  root.append(el('h3', { text: 'Payouts' }), table([['#', (p) => p.id], ['Agent', (p) => p.agent_id], ['Amount', (p) => money(p.amount)], ['Address', (p) => el('code', { class: 'wrap', text: p.address })],
    ['Status', (p) => badge(p.status)], ['', (p) => el('span', {}, p.status === 'requested' ? [decide(p, 'approved'), ' ', decide(p, 'rejected')] : '',
      p.status === 'approved' ? [decide(p, 'paid'), ' ', decide(p, 'rejected')] : '')]], payouts.items, null, 'No payout requests.'));
}

async function security(root) {
  const bot = await api('GET', v1('/admin/bot'));
  root.append(el('div', { class: 'cards' }, [['Rate limit', bot.rate_limit_per_minute + ' / minute / user'], ['Rate-limit store', bot.rate_limit_backend],
    ['Updates refused (this instance)', bot.rate_limited]].map(([l, v]) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(v) }), el('div', { class: 'label', text: l })))));
  if (isAdmin()) {
    const tokens = el('div', { id: 'tokens' });
    const shown = el('div', { id: 'new-token' });
    async function loadTokens() {
      const list = await api('GET', v1('/tokens'));
      tokens.replaceChildren(table([['#', (t) => t.id], ['Name', (t) => t.name], ['Role', (t) => t.role], ['Agent', (t) => t.agent_id || ''],
        ['Created', (t) => fmtTime(t.created_at)], ['Last used', (t) => fmtTime(t.last_used_at) || 'never'], ['State', (t) => (t.revoked_at ? 'revoked' : 'live')],
        ['', (t) => t.revoked_at ? '' : el('button', { class: 'danger', onclick: guarded(async () => {
          if (!await confirmDialog('Revoke token ' + t.name + '? Whatever uses it stops working at once.', 'Revoke')) return;
          await api('DELETE', v1('/tokens/' + t.id)); toast('Token ' + t.name + ' revoked'); await loadTokens();
        }) }, 'Revoke')]], list, null, 'No API tokens.'));
    }
    await loadTokens();
    root.append(el('h3', { text: 'API tokens' }), tokens,
      el('form', { class: 'row', onsubmit: guarded(async () => {
        const body = { name: val('tk-name'), role: val('tk-role') };
        if (val('tk-agent')) body.agent_id = Number(val('tk-agent'));
        const t = await api('POST', v1('/tokens'), body);
        shown.replaceChildren(el('p', {}, 'Copy this token now; it is not shown again: ', copyButton(t.token, 'Copy token')), el('div', { class: 'secret', text: t.token }));
        await loadTokens();
      }) }, input('tk-name', 'Name', { field: 'name' }), select('tk-role', 'Role', [['operator', 'operator'], ['admin', 'admin'], ['service', 'service'], ['agent', 'agent']]),
        input('tk-agent', 'Agent id (agent tokens)', { field: 'agent_id' }),
        el('button', { id: 'tk-create', type: 'submit' }, 'Create token')), shown);
    const accounts = el('div', { id: 'accounts' });
    async function loadAccounts() {
      const list = await api('GET', v1('/admin/accounts'));
      accounts.replaceChildren(table([['#', (a) => a.id], ['Username', (a) => a.username], ['Role', (a) => a.role], ['Last login', (a) => fmtTime(a.last_login_at) || 'never']], list));
    }
    await loadAccounts();
    root.append(el('h3', { text: 'Dashboard accounts' }), accounts,
      el('form', { class: 'row', onsubmit: guarded(async () => {
        await api('POST', v1('/admin/accounts'), { username: val('acc-name'), password: val('acc-pass'), role: val('acc-role') });
        toast('Account ' + val('acc-name') + ' saved'); document.getElementById('acc-pass').value = ''; await loadAccounts();
      }) }, input('acc-name', 'Username', { field: 'username' }), input('acc-pass', 'Password (10+ characters)', { type: 'password', field: 'password' }),
        select('acc-role', 'Role', [['operator', 'operator'], ['admin', 'admin']]),
        el('button', { type: 'submit' }, 'Save account')));
  }
  const log = el('div', { id: 'audit' });
  root.append(el('h3', { text: 'Audit log' }), el('form', { class: 'row', onsubmit: guarded(() => loadAudit()) }, input('au-entity', 'Entity', { placeholder: 'order, product, agent…' }), input('au-id', 'Entity id'), input('au-actor', 'Who', { placeholder: 'system, token:3, dashboard:boss' }), input('au-action', 'Action', { placeholder: 'order.paid' }),
    el('button', { type: 'submit' }, 'Filter')), log);
  async function loadAudit() {
    const q = new URLSearchParams({ limit: '100' });
    for (const [k, id] of [['entity', 'au-entity'], ['entity_id', 'au-id'], ['actor', 'au-actor'], ['action', 'au-action']]) if (val(id)) q.set(k, val(id));
    const r = await api('GET', v1('/audit?' + q));
    log.replaceChildren(table([['When', (a) => fmtTime(a.at)], ['What', (a) => el('span', { 'data-action': a.action }, sentence(a))], ['Entity', (a) => a.entity.replace(/_/g, ' ') + ' #' + a.entity_id],
      ['Change', (a) => el('span', { class: 'change', text: diff(a.before, a.after) })]], r.items, null, 'No entries match.'));
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
        el('td', {}, badge(s.state)), el('td', { text: duration(s.uptime_secs) }), el('td', { class: 'restarts', text: String(s.restarts) }),
        el('td', { text: s.last_error || '' }),
        el('td', {}, isAdmin() ? el('button', { 'data-restart': s.path, onclick: guarded(async () => {
          if (!await confirmDialog('Restart ' + s.path + ' and everything under it? Work in flight is finished or resumed; nothing is lost.', 'Restart')) return;
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
  const support = el('div', { id: 'support-requests' });
  const loadSupport = async () => {
    const r = await api('GET', v1('/support/requests?limit=100'));
    support.replaceChildren(table([['#', (x) => x.id], ['Customer', (x) => x.first_name + (x.username ? ' @' + x.username : '') + ' · tg ' + x.telegram_id],
      ['About', (x) => x.topic], ['Opened', (x) => fmtTime(x.created_at)], ['Status', (x) => badge(x.status)],
      ['', (x) => x.status === 'open' ? el('button', { 'data-close-support': x.id, onclick: guarded(async () => { await api('POST', v1('/support/requests/' + x.id + '/close')); toast('Request #' + x.id + ' closed'); loadSupport(); }) }, 'Mark answered') : '']],
      r.items, null, 'No payment support requests.'));
  };
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
  root.append(el('h3', { text: 'Payment support requests (/paysupport)' }), support);
  await load();
  await loadSupport();
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
  const notice = el('div', { class: 'sim-notice', id: 'sim-notice', role: 'status' });
  const say = async (text) => {
    await api('POST', '/sim/api/users/' + state.simUser.id + '/messages', { text, first_name: state.simUser.first_name, language_code: state.simUser.language_code });
    await refresh();
  };
  const menu = el('div', { class: 'sim-menu', id: 'sim-menu', hidden: true });
  const composer = el('form', { class: 'composer', id: 'sim-composer', onsubmit: guarded(async () => {
    const text = val('sim-text');
    if (!state.simUser) { const e = new Error('Pick a customer on the left, or start a new chat, first.'); e.field = 'sim-text'; throw e; }
    if (!text.trim()) return;
    document.getElementById('sim-text').value = '';
    await say(text);
  }) }, el('button', { type: 'button', id: 'sim-commands', title: 'Commands', onclick: () => { menu.hidden = !menu.hidden; } }, '/'),
    el('label', { 'data-field': 'sim-text', class: 'grow' }, el('input', { id: 'sim-text', placeholder: 'Message', autocomplete: 'off' })),
    el('button', { class: 'primary', id: 'sim-send', type: 'submit' }, 'Send'));
  root.append(el('div', { class: 'sim' },
    el('div', {}, users, el('h3', { text: 'New customer' }), input('sim-name', 'Name', { value: 'Alex' }),
      select('sim-lang', 'Language', [['en', 'English'], ['zh', '中文']]),
      input('sim-payload', 'Opened from a link (optional)', { placeholder: 'ref_CODE or p_12' }),
      el('button', { id: 'sim-add', onclick: guarded(async () => {
        const u = { id: 100000000 + Math.floor(Math.random() * 899999999), first_name: val('sim-name') || 'Customer', language_code: val('sim-lang') };
        const payload = val('sim-payload').trim();
        await api('POST', '/sim/api/users/' + u.id + '/messages', { text: payload ? '/start ' + payload : '/start', first_name: u.first_name, language_code: u.language_code });
        state.simUser = u; await loadUsers(); await refresh();
      }) }, 'Start a chat')),
    el('div', { class: 'sim-window' }, el('div', { id: 'sim-title', class: 'sim-title', text: 'Pick or start a customer chat' }), notice, chat, menu, composer)));
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
    const r = await api('GET', '/sim/api/users/' + state.simUser.id + '/chat');
    document.getElementById('sim-title').replaceChildren(el('strong', { text: '@' + r.bot_username }),
      el('span', { class: 'muted', text: ' · chatting as ' + state.simUser.first_name + ' (' + state.simUser.id + ')' }));
    const commands = (state.simUser.language_code === 'zh' && r.commands.zh) || r.commands.default || [];
    menu.replaceChildren(...commands.map((c) => el('button', { type: 'button', 'data-command': c.command, onclick: guarded(async () => { menu.hidden = true; await say('/' + c.command); }) },
      el('strong', { text: '/' + c.command }), ' ', el('span', { class: 'muted', text: c.description }))));
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
    if (m.invoice) {
      // a Stars invoice as Telegram shows it, with its Pay button; the Stars are simulated
      const inv = m.invoice;
      b.classList.add('invoice');
      b.append(el('div', { class: 'text' }, el('strong', { text: inv.title })), el('div', { class: 'text', text: inv.description }),
        el('div', { class: 'text' }, el('strong', { text: inv.total_amount + ' ⭐' })));
      if (inv.paid) b.append(el('div', { class: 'muted', text: 'Paid (simulated Stars)' }));
      else b.append(el('button', { class: 'primary pay-invoice', 'data-invoice': m.message_id, onclick: guarded(async () => {
        const r = await api('POST', '/sim/api/users/' + state.simUser.id + '/payments', { message_id: m.message_id });
        if (r.ok) toast('Paid ' + inv.total_amount + ' simulated Stars'); else toast('Telegram refused: ' + (r.error_message || 'no answer'));
        await refresh();
      }) }, 'Pay ' + inv.total_amount + ' ⭐ (simulated)'));
    } else if (m.payment) {
      const p = m.payment;
      b.classList.add('service');
      b.append(el('div', { class: 'text', text: p.kind === 'refunded_payment'
        ? '↩️ ' + p.total_amount + ' ⭐ refunded (simulated Stars)'
        : '⭐ You paid ' + p.total_amount + ' Stars (simulated)' }));
    } else if (m.from_bot) b.append(el('div', { class: 'text' }, richText(text))); else b.append(el('div', { class: 'text', text }));
    const at = new Date(m.date * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    b.append(el('div', { class: 'meta', text: (m.edited ? 'edited ' : '') + at }));
    const rows = (m.reply_markup && m.reply_markup.inline_keyboard) || [];
    if (rows.length) {
      b.append(el('div', { class: 'keyboard' }, rows.map((row) => el('div', { class: 'kbrow' }, row.map((btn) => el('button', { 'data-callback': btn.callback_data,
        onclick: guarded(async () => {
          const r = await api('POST', '/sim/api/users/' + state.simUser.id + '/callbacks', { message_id: m.message_id, data: btn.callback_data });
          answered(r.answer);
          await refresh();
        }) }, btn.text))))));
    }
    const order = m.from_bot && /TRC-20/.test(text) && text.match(/#(\d+)/);
    if (order && state.me.demo) {
      b.append(el('button', { class: 'primary simulate-payment', 'data-order': order[1], onclick: guarded(async () => {
        await api('POST', v1('/admin/demo/pay'), { order_id: Number(order[1]) }); toast('Payment sent on the demo chain'); setTimeout(refresh, 500);
      }) }, 'Simulate payment'));
    }
    return b;
  }
  // the bot's answer to a button press, shown as Telegram shows it: a notice over the chat, or
  // an alert to dismiss
  function answered(a) {
    if (!a || !a.text) return;
    if (a.show_alert) {
      const box = el('div', { class: 'modal', id: 'sim-alert' }, el('div', { class: 'dialog', role: 'alertdialog' }, el('p', { text: a.text }),
        el('div', { class: 'row' }, el('button', { id: 'sim-alert-ok', class: 'primary', onclick: () => box.remove() }, 'OK'))));
      document.body.append(box);
    } else {
      notice.replaceChildren(el('div', { text: a.text }));
      setTimeout(() => notice.replaceChildren(), 3000);
    }
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
    .map(([k, [title]]) => el('button', { 'data-panel': k, onclick: () => go(k) }, title)));
  render();
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
  $('#menu').addEventListener('click', () => document.body.classList.toggle('nav-open'));
  window.addEventListener('hashchange', () => { if (state.me) render(); });
  try {
    const s = await api('GET', '/admin/api/session');
    if (s && s.me) start(s.me); else showLogin();
  } catch (e) { showLogin(); }
});
