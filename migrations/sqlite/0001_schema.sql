-- telebot schema, sqlite dialect. keep in step with migrations/postgres/0001_schema.sql:
-- same tables, columns, constraints and numbering; only the dialect differs.
-- money columns are integers of micro-units (1 usdt = 1000000); times are unix milliseconds.

-- agents (resellers). created before users because users point at their referring agent.
create table agents (
    id integer primary key,
    -- the telegram user behind the agent, when there is one
    user_id bigint unique,
    name text not null,
    -- referral code used in t.me/<bot>?start=ref_<code>
    code text not null unique,
    commission_bps bigint not null default 0 check (commission_bps between 0 and 10000),
    status text not null default 'pending' check (status in ('pending', 'active', 'suspended', 'rejected')),
    permissions text not null default '[]',
    payout_address text,
    created_at bigint not null,
    updated_at bigint not null
);

-- telegram customers. one row per telegram id, enforced here.
create table users (
    id integer primary key,
    telegram_id bigint not null unique,
    username text,
    first_name text not null default '',
    language text not null default 'en',
    -- first-touch attribution: set once, never overwritten
    referred_by_agent_id bigint references agents (id),
    -- spendable balance; every change has a row in balance_ledger
    balance bigint not null default 0 check (balance >= 0),
    blocked boolean not null default false,
    -- screen state of the bot session, restored when the session actor starts
    session_state text not null default '{}',
    created_at bigint not null,
    updated_at bigint not null
);

create table categories (
    id integer primary key,
    slug text not null unique,
    name_en text not null,
    name_zh text not null,
    position bigint not null default 0,
    hidden boolean not null default false,
    created_at bigint not null
);

create table products (
    id integer primary key,
    category_id bigint references categories (id),
    kind text not null check (kind in ('service', 'digital', 'topup')),
    name_en text not null,
    name_zh text not null,
    description_en text not null default '',
    description_zh text not null default '',
    price bigint not null check (price >= 0),
    hidden boolean not null default false,
    deleted boolean not null default false,
    position bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null
);
create index products_category on products (category_id, position);

-- stock for digital goods: one row per deliverable item, handed out once.
create table stock_items (
    id integer primary key,
    product_id bigint not null references products (id),
    content text not null,
    order_id bigint,
    created_at bigint not null,
    delivered_at bigint
);
create index stock_items_free on stock_items (product_id, order_id);

create table orders (
    id integer primary key,
    user_id bigint not null references users (id),
    product_id bigint references products (id),
    kind text not null check (kind in ('service', 'digital', 'topup')),
    quantity bigint not null default 1 check (quantity > 0),
    -- price before the unique offset
    price bigint not null check (price >= 0),
    -- exact amount the customer must send (price + unique offset); 0 when paid from balance
    payable_amount bigint not null check (payable_amount >= 0),
    chain text not null default 'tron',
    token text not null default 'USDT',
    wallet text,
    status text not null check (status in ('pending_payment', 'paid', 'delivered', 'in_progress',
                                           'completed', 'expired', 'cancelled', 'refunded')),
    -- what the customer asked for (services)
    request_text text,
    -- what was delivered (digital goods), shown again in "my orders"
    delivery text,
    agent_id bigint references agents (id),
    paid_from_balance boolean not null default false,
    transfer_id bigint,
    expires_at bigint not null,
    paid_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index orders_user on orders (user_id, created_at);
create index orders_status on orders (status, expires_at);
create index orders_agent on orders (agent_id, created_at);

-- incoming token transfers, each counted once: (chain, txid, log_index) is unique.
create table transfers (
    id integer primary key,
    chain text not null,
    txid text not null,
    log_index bigint not null,
    token text not null,
    from_address text not null,
    to_address text not null,
    amount bigint not null check (amount > 0),
    block_number bigint,
    block_time bigint not null,
    -- false while waiting for confirmations
    confirmed boolean not null default false,
    -- pending (not yet matched), matched, late, unmatched, review, assigned
    outcome text not null default 'pending',
    order_id bigint,
    -- which scanner or webhook reported it first
    source text not null,
    created_at bigint not null,
    updated_at bigint not null,
    unique (chain, txid, log_index)
);
create index transfers_outcome on transfers (outcome, created_at);

-- unique-amount allocations. an amount is held while its order waits for payment (pending)
-- and for a while after (quarantined); released rows are history.
create table allocations (
    id integer primary key,
    chain text not null,
    token text not null,
    wallet text not null,
    amount bigint not null,
    order_id bigint not null references orders (id),
    state text not null check (state in ('pending', 'quarantined', 'released')),
    expires_at bigint not null,
    quarantine_until bigint,
    created_at bigint not null
);
-- the invariant behind unique amounts: one live holder per (chain, token, wallet, amount)
create unique index allocations_live_amount on allocations (chain, token, wallet, amount)
    where state in ('pending', 'quarantined');
create unique index allocations_order on allocations (order_id);

create table commissions (
    id integer primary key,
    agent_id bigint not null references agents (id),
    order_id bigint not null unique references orders (id),
    amount bigint not null check (amount >= 0),
    status text not null check (status in ('pending', 'available', 'paid')),
    available_at bigint not null,
    payout_id bigint,
    created_at bigint not null
);
create index commissions_agent on commissions (agent_id, status);

create table payouts (
    id integer primary key,
    agent_id bigint not null references agents (id),
    amount bigint not null check (amount > 0),
    address text not null,
    status text not null check (status in ('requested', 'approved', 'rejected', 'paid')),
    decided_by text,
    decided_at bigint,
    created_at bigint not null
);

-- every balance change, append-only. a transfer credits a balance at most once.
create table balance_ledger (
    id integer primary key,
    user_id bigint not null references users (id),
    delta bigint not null,
    balance_after bigint not null check (balance_after >= 0),
    reason text not null,
    order_id bigint,
    transfer_id bigint unique,
    created_at bigint not null
);
create index balance_ledger_user on balance_ledger (user_id, id);

create table api_tokens (
    id integer primary key,
    name text not null,
    role text not null check (role in ('admin', 'operator', 'agent', 'service')),
    -- sha-256 of the token; the token itself is shown once and never stored
    token_hash text not null unique,
    agent_id bigint references agents (id),
    created_at bigint not null,
    revoked_at bigint,
    last_used_at bigint
);

-- append-only record of every state change and privileged action.
create table audit_log (
    id integer primary key,
    at bigint not null,
    actor text not null,
    action text not null,
    entity text not null,
    entity_id text not null,
    before text,
    after text
);
create index audit_log_entity on audit_log (entity, entity_id, id);
create index audit_log_at on audit_log (at);

create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;
create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;

-- where each chain scanner resumes.
create table scan_cursors (
    source text primary key,
    position bigint not null,
    updated_at bigint not null
);

-- messages and callbacks to deliver, retried until sent; dedupe_key makes enqueueing idempotent.
create table outbox (
    id integer primary key,
    kind text not null,
    dedupe_key text unique,
    payload text not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    last_error text,
    created_at bigint not null,
    updated_at bigint not null
);
create index outbox_due on outbox (status, next_attempt_at);
