-- operator broadcasts to every customer, sent paced and resumed after a restart from
-- last_user_id (users are visited in id order).
create table broadcasts (
    id integer primary key,
    text text not null,
    status text not null check (status in ('running', 'done', 'cancelled')),
    last_user_id bigint not null default 0,
    sent bigint not null default 0,
    failed bigint not null default 0,
    created_by text not null,
    created_at bigint not null,
    finished_at bigint
);
