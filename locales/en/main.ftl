# vpnshop — English. Every key here exists in fa and ru with the same variables (a test checks).
# Numbers arrive already formatted; $n (when present) only selects the plural form.

language-name = 🇬🇧 English
language-choose = Choose your language:
language-set = Language set to English.

menu-title = Hi { $name }! Fast, private V2Ray VPN. What would you like to do?
menu-buy = 🛒 Buy a plan
menu-trial = 🎁 Free trial
menu-services = 📱 My services
menu-language = 🌐 Language
menu-help = ❓ Help

btn-back = ⬅️ Back
btn-menu = 🏠 Menu
btn-cancel = ✖️ Cancel
btn-resume = ▶️ Continue
btn-start-over = 🔄 Start over
btn-qr = 🔳 QR codes
btn-renew = 🔁 Renew
btn-topup = ➕ Buy more data
btn-new-url = 🔄 New subscription URL
btn-service = 📱 This service
btn-cancel-order = ✖️ Cancel order
btn-order-awaiting = 💳 Order #{ $order } · { $price } · awaiting payment
menu-awaiting-payment = You have an order awaiting payment: tap it for the payment details.

help =
    <b>How it works</b>
    1. Buy a plan (or take the free trial).
    2. You get a link and a QR code for each device, and a subscription URL.
    3. Import the subscription URL into v2rayNG (Android), v2rayN (Windows), Hiddify or Streisand (iOS).
    Questions? Write to { $support }.
unknown-message = Sorry, I did not understand that.
stale-button = This menu is out of date; here is the current one.
not-found = That is no longer available.
option-unavailable = That option is not available. Please choose another.
slow-down = Too fast! Please wait a moment.
error-generic = Something went wrong on our side. Please try again in a minute.
banned = Your account has been blocked. If you think this is a mistake, contact { $support }.

resume-offer = You have an unfinished purchase: { $summary }. Continue where you left off?
purchase-cancelled = Purchase cancelled.
extend-trial = A free trial cannot be renewed or topped up. Buy a plan to keep going.
extend-pending = This service is still being set up. You can renew it or add data once it is active.
extend-revoked = This service was ended by the shop and cannot be renewed. Buy a new plan, or ask { $support }.
topup-expired = This service has expired: renew it first, then you can add data.
topup-unlimited = This service already has unlimited data.
price-unavailable = This plan cannot be priced in your currency right now. Please try again later or ask { $support }.

days = { $n ->
    [one] { $days } day
   *[other] { $days } days
}
devices = { $n ->
    [one] { $devices } device
   *[other] { $devices } devices
}
data-gb = { $gb } GB
data-mb = { $mb } MB
data-unlimited = Unlimited data

location-item = { $flag } { $name } · { $n ->
    [one] { $servers } server
   *[other] { $servers } servers
}
buy-location = <b>Choose a location</b>
buy-no-locations = Sorry, no location is on sale right now. Please check back soon.
buy-duration = <b>How long?</b>
buy-devices = <b>How many devices?</b>
buy-data = <b>How much data?</b>
buy-so-far = So far: { $picked }
buy-summary =
    <b>Your plan</b>
    { $picked }
    Price: <b>{ $price }</b>
    Choose how to pay:
buy-summary-renewal =
    <b>Renewal</b>
    { $picked }
    Price: <b>{ $price }</b>
    Choose how to pay:
buy-summary-topup =
    <b>More data</b>
    { $picked }
    Price: <b>{ $price }</b>
    Choose how to pay:
pay-none = Payments are not available right now. Please try again later.
pay-method-card = 💳 Card-to-card transfer
pay-method-stripe = 💳 Card (Stripe)
pay-method-zarinpal = 💳 Zarinpal
pay-card =
    Order <b>#{ $order }</b>: <b>{ $price }</b>
    Transfer exactly this amount to:
    <code>{ $card }</code>
    { $holder } · { $bank }
    Pay by <b>{ $deadline }</b>, then send a photo of the receipt here. Reviews usually take up to { $n ->
        [one] { $minutes } minute
       *[other] { $minutes } minutes
    }; your service starts right after.
btn-pay-online = 💳 Pay { $price }
pay-online =
    Order <b>#{ $order }</b>: <b>{ $price }</b>
    Tap the button to pay on the secure payment page. Your service starts as soon as the payment is confirmed; we tell you here.
pay-online-unavailable = The payment service is not answering right now, so order <b>#{ $order }</b> ({ $price }) is still open. Please try again in a minute.
pay-online-refused = The payment service could not take order <b>#{ $order }</b> ({ $price }). Please choose another way to pay or write to us.
btn-try-again = 🔄 Try again
payment-refunded = ↩️ The payment for order <b>#{ $order }</b> was refunded, so its service has ended. Questions: { $support }.
paid-order-paid = ✅ Order <b>#{ $order }</b> is paid. Your service is in My services.
paid-order-waiting = ⏳ Order <b>#{ $order }</b> is not paid yet. If you just paid, it is being confirmed; you will hear from us here.
paypage-title = Payment
paypage-back = Back to the bot
paypage-telegram = Go back to Telegram to continue.
paypage-return = Thank you. Go back to the bot in Telegram: it shows order <b>#{ $order }</b> and tells you as soon as its payment is confirmed.
paypage-bad-request = This payment link is incomplete or damaged. If you paid, the payment is still confirmed automatically and the bot tells you.
paypage-unknown = We could not find this payment. If you paid, write to { $support } with the payment's reference number.
paypage-busy = We could not check your payment just now. If you paid, it is confirmed automatically within a few minutes and the bot tells you; you can also reload this page in a moment.
zarinpal-paid = ✅ Payment received: order <b>#{ $order }</b> is paid. Your service is being set up, and the bot sends it to you in Telegram.
zarinpal-cancelled = The payment of order <b>#{ $order }</b> was cancelled, so the order is not paid. You can pay it again from the bot.
zarinpal-not-paid = Zarinpal did not confirm a payment for order <b>#{ $order }</b>, so it is not paid. If money left your account, your bank returns it. You can pay again from the bot.
zarinpal-invalid = This payment of order <b>#{ $order }</b> is no longer valid at Zarinpal, so the order is not paid. Start a new payment from the bot.
zarinpal-mismatch = The amount paid does not match order <b>#{ $order }</b>, so the order was not fulfilled. Our team has been told; please write to { $support }.
zarinpal-held = Your payment for order <b>#{ $order }</b> arrived, but the order had already been settled, so our team checks it by hand. Please write to { $support }.
zarinpal-already-paid = Order <b>#{ $order }</b> was already paid, so this payment was not taken. If money left your account, Zarinpal and your bank return it to you automatically.
zarinpal-pending = We could not confirm the payment of order <b>#{ $order }</b> yet. If you paid, it is confirmed automatically within a few minutes, and the bot tells you.
btn-copy-card = 📋 Copy card number
btn-payment-details = 💳 Payment details
receipt-hint = 🧾 Please send the receipt of your transfer as a <b>photo</b> (or as an image file) here.
receipt-no-order = You have no order waiting for a card payment. Choose a plan first, then send the receipt.
receipt-already = 🧾 The receipt for order <b>#{ $order }</b> is being checked. You will hear from us here.
receipt-too-many = Too many receipts. Please wait { $n ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
} and try again.
receipt-resent = 🧾 You sent this receipt before. If it was not accepted, please send a new photo of the receipt for this order, or write to { $support }.
receipt-reused = ⚠️ This receipt was already sent before and cannot be used again. Please send the receipt of your own transfer for this order.
receipt-too-large = This file is too large (the limit is { $mb } MB). Please send a photo of the receipt.
receipt-not-image = This is not an image. Please send the receipt as a photo.
receipt-under-review = 🧾 Thank you! The receipt for order <b>#{ $order }</b> is under review. This usually takes up to { $n ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}; you will hear from us here.
receipt-order-closed = This order is no longer open for payment (its time ran out). Please start a new purchase.
payment-accepted-new = ✅ Payment for order <b>#{ $order }</b> accepted. Your service is being set up; the link arrives here in a moment.
payment-accepted-renewal = ✅ Payment for order <b>#{ $order }</b> accepted: { $place } is renewed until <b>{ $until }</b>.
payment-accepted-topup = ✅ Payment for order <b>#{ $order }</b> accepted: { $data } added to { $place }.
payment-rejected =
    ❌ The receipt for order <b>#{ $order }</b> was not accepted: { $reason }
    Please check the transfer and send a new receipt for this order.
payment-revoked =
    ❌ After review, the payment for order <b>#{ $order }</b> was rejected: { $reason }
    What it gave has been withdrawn. If you think this is a mistake, write to { $support }.
reject-reason-wrong-amount = the amount is wrong
reject-reason-unreadable = the receipt cannot be read
reject-reason-not-received = the money has not arrived
reject-reason-duplicate = this receipt was used before
reject-reason-other = it could not be verified

review-caption =
    🧾 <b>Payment #{ $payment }</b> · { $status }
    Order #{ $order } · { $kind } · { $plan }
    Amount: <b>{ $amount }</b> · card { $card }
    Customer: { $customer }
    History: { $paid } paid, { $rejected } rejected
    Sent { $sent } · { $auto }
review-status-open = ⏳ under review
review-status-accepted = ✅ accepted by { $by } at { $at }
review-status-auto = 🤖 accepted automatically at { $at }
review-status-rejected = ❌ rejected by { $by } at { $at }: { $reason }
review-auto-at = auto-accept at { $at }
review-no-auto = never auto-accepted
order-kind-new = new
order-kind-renewal = renewal
order-kind-topup = data top-up
btn-accept = ✅ Accept
btn-reject = ❌ Reject
btn-reject-typed = ✍️ Other reason
admin-typed-reason = Send /reject { $payment } followed by the reason.
admin-decided-accepted = ✅ Payment #{ $payment } accepted.
admin-decided-rejected = ❌ Payment #{ $payment } rejected.
admin-decided-auto-accepted = 🤖 Payment #{ $payment } accepted automatically.
admin-already = Payment #{ $payment } is already { $status } by { $by } at { $at }.
admin-not-due = Payment #{ $payment } is not due for automatic acceptance.
admin-no-payment = There is no payment #{ $payment }.
admin-cannot = Payment #{ $payment } cannot be decided: { $why }
admin-usage = Usage: { $command } &lt;payment id&gt;
admin-queue-empty = No receipts are waiting for review.
admin-queue = { $n } waiting for review, oldest first:
stats-title = 📊 <b>Sales</b>
stats-today = Today
stats-days = Last { $days } days
stats-window =
    <b>{ $window }</b>: { $revenue }
    { $orders } paid orders · { $customers } new customers · { $trials } trials
stats-now = Now: { $active } active { $active ->
    [one] subscription
   *[other] subscriptions
} · { $pending } { $pending ->
    [one] review
   *[other] reviews
} waiting

trial-choose = <b>Free trial</b>: { $n ->
    [one] { $days } day
   *[other] { $days } days
}, { $data }, { $devices }. Pick a location:
trial-granted = 🎁 Your trial is being set up. Your link arrives here in a moment.
trial-queued = 🎁 Your trial is reserved, but no server can set it up right now, so it is queued. We have told the team; your link arrives here as soon as it is ready.
trial-used = You have already used your free trial. Our plans start small; have a look!
trial-limited = Too many trial requests right now. Please try again in { $n ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
trial-unavailable = No server in that location can take a trial right now. Try another location.
trial-disabled = Free trials are not available at the moment.
trial-tag = trial

services-empty = You have no services yet.
services-list = <b>Your services</b>
status-pending = ⏳ setting up
status-active = ✅ active
status-limited = 🚫 data used up
status-expired = ⌛ expired
status-revoked = ⛔ revoked
time-not-started = Starts when it is set up
time-left = { $n ->
    [one] { $days } day left
   *[other] { $days } days left
}
data-usage = Used { $used } of { $cap } GB ({ $left } GB left)
data-usage-unlimited = Used { $used } GB (unlimited)
device-link = Device { $seat }: <code>{ $link }</code>
device-link-via = Device { $seat } · { $via }: <code>{ $link }</code>
links-pending = Your links appear here as soon as the service is set up.
links-paused = Your links work again once the service is renewed (or has data again).
links-ended = This service has ended; its links no longer work.
service-detail =
    <b>{ $place }</b> · { $status }
    { $time }
    { $data }

    Subscription URL (import it in your app):
    <code>{ $url }</code>

    { $links }
qr-caption = Device { $seat }: scan this in your V2Ray app.
qr-caption-via = Device { $seat } · { $via }: scan this in your V2Ray app.

notice-ready =
    ✅ <b>Your { $place } service is ready!</b>
    Import this subscription URL into v2rayNG, v2rayN, Hiddify or Streisand:
    <code>{ $url }</code>

    Or use a link per device:
    { $links }
notice-limited = 🚫 Your { $place } service has used all its data. Buy more data or renew to continue.
notice-expired = ⌛ Your { $place } service has expired. Renew to keep using it.
notice-revoked = ⛔ Your { $place } service was ended by the shop. Contact support if you have questions.
notice-resumed = ✅ Your { $place } service works again.
notice-expires-soon = ⏰ Your { $place } service ends in { $n ->
    [one] { $days } day
   *[other] { $days } days
}. Renew now to keep it without interruption.
notice-data-almost = 📦 Your { $place } service has used { $percent }% of its data.
feed-url-replaced = Done: the old subscription URL no longer works. Import the new one in your apps.
