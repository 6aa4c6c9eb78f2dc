-- Telegram Stars (currency XTR) beside USDT. Stars are whole numbers and are never mixed with
-- the micro-USDT money columns: a Stars order keeps price and payable_amount at 0 and its
-- price in whole Stars in orders.stars.

-- a product's price in whole Stars, when it is sold for Stars too
alter table products add column stars_price bigint check (stars_price is null or stars_price > 0);

-- how the order is paid: 'usdt' (unique amount on the chain, or the balance) or 'stars'
alter table orders add column payment_method text not null default 'usdt'
    check (payment_method in ('usdt', 'stars'));
-- what a Stars order costs, in whole Stars
alter table orders add column stars bigint check (stars is null or stars > 0);

-- an item taken back when its order was refunded (it is not handed out again)
alter table stock_items add column revoked_at bigint;

-- commissions and payouts name their currency: a Stars sale earns Stars
alter table commissions add column currency text not null default 'USDT' check (currency in ('USDT', 'XTR'));
alter table payouts add column currency text not null default 'USDT' check (currency in ('USDT', 'XTR'));

-- every successful_payment Telegram reported, once per telegram_payment_charge_id (Telegram
-- delivers updates at least once). 'credited' paid its order; 'unmatched' paid nothing (no such
-- order, another user's, a wrong amount or currency, an order no longer pending) and waits for
-- an operator, who can refund it. refunded_at is set once the Stars went back.
create table stars_payments (
    id integer primary key,
    charge_id text not null unique,
    provider_charge_id text not null default '',
    telegram_id bigint not null,
    user_id bigint references users (id),
    order_id bigint references orders (id),
    currency text not null,
    total_amount bigint not null,
    payload text not null,
    outcome text not null check (outcome in ('credited', 'unmatched')),
    problem text,
    refunded_at bigint,
    created_at bigint not null
);
create unique index stars_payments_order on stars_payments (order_id) where outcome = 'credited';
create index stars_payments_outcome on stars_payments (outcome, created_at);

-- requests for help with a payment (/paysupport), for operators to answer
create table support_requests (
    id integer primary key,
    user_id bigint not null references users (id),
    topic text not null,
    status text not null default 'open' check (status in ('open', 'closed')),
    created_at bigint not null,
    closed_at bigint
);
create index support_requests_status on support_requests (status, created_at);
