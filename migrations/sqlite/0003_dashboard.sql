-- operator accounts of the dashboard (password hashes are argon2id) and their sessions.
create table dashboard_users (
    id integer primary key,
    username text not null unique,
    password_hash text not null,
    role text not null check (role in ('admin', 'operator')),
    created_at bigint not null,
    last_login_at bigint
);

-- a session is found by the sha-256 of its cookie; the csrf token guards every change.
create table dashboard_sessions (
    id integer primary key,
    token_hash text not null unique,
    -- who logged in: a dashboard account or an api token
    subject text not null,
    role text not null check (role in ('admin', 'operator', 'agent', 'service')),
    agent_id bigint,
    csrf text not null,
    expires_at bigint not null,
    created_at bigint not null
);
create index dashboard_sessions_expiry on dashboard_sessions (expires_at);
