-- the chat message that shows an order's payment instructions and its buttons (check, cancel,
-- pay from the balance): when the order leaves pending_payment those buttons are taken off it.
-- a row is removed once its buttons are gone.
create table payment_messages (
    order_id bigint primary key,
    chat_id bigint not null,
    message_id bigint not null,
    created_at bigint not null
);
