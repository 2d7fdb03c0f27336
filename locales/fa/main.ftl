# vpnshop — Persian (fa). Same keys and variables as locales/en/main.ftl (a test checks).
# Numbers arrive already formatted with Persian digits; $n only selects the plural form.
# The app starts every line with a right-to-left mark itself; do not add one here.

language-name = 🇮🇷 فارسی
language-choose = زبان خود را انتخاب کنید:
language-set = زبان روی فارسی تنظیم شد.

menu-title = سلام { $name }! وی‌پی‌ان V2Ray پرسرعت و امن. چه کاری می‌خواهید انجام دهید؟
menu-buy = 🛒 خرید سرویس
menu-trial = 🎁 تست رایگان
menu-services = 📱 سرویس‌های من
menu-language = 🌐 زبان
menu-help = ❓ راهنما

btn-back = ➡️ بازگشت
btn-menu = 🏠 منو
btn-cancel = ✖️ لغو
btn-resume = ◀️ ادامه
btn-start-over = 🔄 شروع دوباره
btn-qr = 🔳 کدهای QR
btn-renew = 🔁 تمدید
btn-topup = ➕ خرید حجم اضافه
btn-new-url = 🔄 لینک اشتراک جدید
btn-service = 📱 همین سرویس
btn-cancel-order = ✖️ لغو سفارش
btn-order-awaiting = 💳 سفارش #{ $order } · { $price } · در انتظار پرداخت
menu-awaiting-payment = یک سفارش در انتظار پرداخت دارید: برای دیدن اطلاعات پرداخت روی آن بزنید.

help =
    <b>راهنمای استفاده</b>
    ۱. یک سرویس بخرید (یا تست رایگان بگیرید).
    ۲. برای هر دستگاه یک لینک و یک کد QR می‌گیرید، به‌علاوهٔ یک لینک اشتراک.
    ۳. لینک اشتراک را در v2rayNG (اندروید)، v2rayN (ویندوز)، Hiddify یا Streisand (iOS) وارد کنید.
    سؤالی دارید؟ به { $support } پیام بدهید.
unknown-message = ببخشید، متوجه نشدم.
stale-button = این منو قدیمی شده؛ منوی به‌روز اینجاست.
not-found = این مورد دیگر در دسترس نیست.
option-unavailable = این گزینه در دسترس نیست. لطفاً گزینهٔ دیگری انتخاب کنید.
slow-down = کمی آهسته‌تر! لطفاً چند لحظه صبر کنید.
error-generic = مشکلی از سمت ما پیش آمد. لطفاً یک دقیقهٔ دیگر دوباره امتحان کنید.
banned = حساب شما مسدود شده است. اگر فکر می‌کنید اشتباهی شده، به { $support } پیام بدهید.

resume-offer = یک خرید نیمه‌تمام دارید: { $summary }. از همان‌جا ادامه می‌دهید؟
purchase-cancelled = خرید لغو شد.
extend-trial = تست رایگان قابل تمدید یا خرید حجم نیست. برای ادامه یک سرویس بخرید.
extend-pending = این سرویس هنوز در حال راه‌اندازی است. پس از فعال شدن می‌توانید آن را تمدید کنید یا حجم بخرید.
extend-revoked = این سرویس توسط فروشگاه پایان یافته و قابل تمدید نیست. یک سرویس جدید بخرید یا به { $support } پیام بدهید.
topup-expired = این سرویس منقضی شده است: ابتدا آن را تمدید کنید، سپس می‌توانید حجم اضافه بخرید.
topup-unlimited = این سرویس همین حالا حجم نامحدود دارد.
price-unavailable = قیمت این سرویس در حال حاضر به واحد پول شما مشخص نیست. لطفاً بعداً دوباره امتحان کنید یا به { $support } پیام بدهید.

days = { $n ->
    [one] { $days } روز
   *[other] { $days } روز
}
devices = { $n ->
    [one] { $devices } دستگاه
   *[other] { $devices } دستگاه
}
data-gb = { $gb } گیگ
data-mb = { $mb } مگ
data-unlimited = حجم نامحدود

location-item = { $flag } { $name } · { $n ->
    [one] { $servers } سرور
   *[other] { $servers } سرور
}
buy-location = <b>یک لوکیشن انتخاب کنید</b>
buy-no-locations = ببخشید، فعلاً هیچ لوکیشنی برای فروش موجود نیست. لطفاً کمی بعد دوباره سر بزنید.
buy-duration = <b>برای چه مدت؟</b>
buy-devices = <b>برای چند دستگاه؟</b>
buy-data = <b>چه مقدار حجم؟</b>
buy-so-far = انتخاب‌های شما: { $picked }
buy-summary =
    <b>سرویس شما</b>
    { $picked }
    قیمت: <b>{ $price }</b>
    روش پرداخت را انتخاب کنید:
buy-summary-renewal =
    <b>تمدید</b>
    { $picked }
    قیمت: <b>{ $price }</b>
    روش پرداخت را انتخاب کنید:
buy-summary-topup =
    <b>حجم اضافه</b>
    { $picked }
    قیمت: <b>{ $price }</b>
    روش پرداخت را انتخاب کنید:
pay-none = فعلاً امکان پرداخت وجود ندارد. لطفاً بعداً دوباره امتحان کنید.
pay-method-card = 💳 کارت به کارت
pay-method-stripe = 💳 کارت بین‌المللی (Stripe)
pay-method-zarinpal = 💳 Zarinpal
pay-card =
    سفارش <b>#{ $order }</b>: <b>{ $price }</b>
    دقیقاً همین مبلغ را به این کارت واریز کنید:
    <code>{ $card }</code>
    { $holder } · { $bank }
    تا <b>{ $deadline }</b> پرداخت کنید و سپس عکس رسید را همین‌جا بفرستید. بررسی رسید معمولاً حداکثر { $n ->
        [one] { $minutes } دقیقه
       *[other] { $minutes } دقیقه
    } طول می‌کشد و سرویس شما بلافاصله پس از آن فعال می‌شود.
btn-pay-online = 💳 پرداخت { $price }
pay-online =
    سفارش <b>#{ $order }</b>: <b>{ $price }</b>
    برای پرداخت در درگاه امن روی دکمه بزنید. سرویس شما به محض تأیید پرداخت فعال می‌شود و همین‌جا خبرتان می‌کنیم.
pay-online-unavailable = درگاه پرداخت فعلاً پاسخ نمی‌دهد، پس سفارش <b>#{ $order }</b> ({ $price }) همچنان باز است. لطفاً یک دقیقه دیگر دوباره امتحان کنید.
pay-online-refused = درگاه پرداخت نتوانست سفارش <b>#{ $order }</b> ({ $price }) را بپذیرد. لطفاً روش پرداخت دیگری انتخاب کنید یا به ما پیام دهید.
btn-try-again = 🔄 دوباره امتحان کنید
payment-refunded = ↩️ مبلغ سفارش <b>#{ $order }</b> بازگردانده شد و سرویس آن پایان یافت. سؤال‌ها: { $support }.
paid-order-paid = ✅ سفارش <b>#{ $order }</b> پرداخت شده است. سرویس شما در «سرویس‌های من» است.
paid-order-waiting = ⏳ سفارش <b>#{ $order }</b> هنوز پرداخت نشده است. اگر همین حالا پرداخت کرده‌اید، در حال تأیید است و همین‌جا خبرتان می‌کنیم.
paypage-title = پرداخت
paypage-back = بازگشت به ربات
paypage-telegram = برای ادامه به تلگرام برگردید.
paypage-return = متشکریم. به ربات در تلگرام برگردید: سفارش <b>#{ $order }</b> را آنجا می‌بینید و به محض تأیید پرداخت، ربات خبرتان می‌کند.
paypage-bad-request = این پیوند پرداخت ناقص یا خراب است. اگر پرداخت کرده‌اید، پرداخت شما همچنان به‌طور خودکار تأیید می‌شود و ربات خبرتان می‌کند.
paypage-unknown = این پرداخت را پیدا نکردیم. اگر پرداخت کرده‌اید، با شمارهٔ پیگیری پرداخت به { $support } پیام دهید.
paypage-busy = همین حالا نتوانستیم پرداخت شما را بررسی کنیم. اگر پرداخت کرده‌اید، ظرف چند دقیقه به‌طور خودکار تأیید می‌شود و ربات خبرتان می‌کند؛ چند لحظه بعد هم می‌توانید این صفحه را دوباره باز کنید.
zarinpal-paid = ✅ پرداخت دریافت شد: سفارش <b>#{ $order }</b> پرداخت شده است. سرویس شما در حال آماده‌سازی است و ربات آن را در تلگرام برایتان می‌فرستد.
zarinpal-cancelled = پرداخت سفارش <b>#{ $order }</b> لغو شد، پس این سفارش پرداخت نشده است. می‌توانید از طریق ربات دوباره آن را پرداخت کنید.
zarinpal-not-paid = زرین‌پال پرداختی برای سفارش <b>#{ $order }</b> تأیید نکرد، پس این سفارش پرداخت نشده است. اگر مبلغی از حساب شما کسر شده، بانک آن را بازمی‌گرداند. می‌توانید از طریق ربات دوباره پرداخت کنید.
zarinpal-invalid = این پرداخت سفارش <b>#{ $order }</b> دیگر در زرین‌پال معتبر نیست، پس سفارش پرداخت نشده است. از طریق ربات پرداخت تازه‌ای شروع کنید.
zarinpal-mismatch = مبلغ پرداخت‌شده با مبلغ سفارش <b>#{ $order }</b> یکی نیست، پس سفارش انجام نشد. به تیم ما اطلاع داده شده است؛ لطفاً به { $support } پیام دهید.
zarinpal-held = پرداخت شما برای سفارش <b>#{ $order }</b> رسید، اما این سفارش پیش‌تر تسویه شده بود، پس تیم ما آن را دستی بررسی می‌کند. لطفاً به { $support } پیام دهید.
zarinpal-already-paid = سفارش <b>#{ $order }</b> پیش‌تر پرداخت شده بود، پس این پرداخت برداشت نشد. اگر مبلغی از حساب شما کسر شده، زرین‌پال و بانک شما آن را خودکار بازمی‌گردانند.
zarinpal-pending = هنوز نتوانستیم پرداخت سفارش <b>#{ $order }</b> را تأیید کنیم. اگر پرداخت کرده‌اید، ظرف چند دقیقه به‌طور خودکار تأیید می‌شود و ربات خبرتان می‌کند.
btn-copy-card = 📋 کپی شماره کارت
btn-payment-details = 💳 اطلاعات پرداخت
receipt-hint = 🧾 لطفاً رسید واریز خود را به‌صورت <b>عکس</b> (یا فایل تصویری) همین‌جا بفرستید.
receipt-no-order = هیچ سفارشی در انتظار پرداخت کارت به کارت ندارید. ابتدا یک سرویس انتخاب کنید، سپس رسید را بفرستید.
receipt-already = 🧾 رسید سفارش <b>#{ $order }</b> در حال بررسی است. نتیجه را همین‌جا به شما اطلاع می‌دهیم.
receipt-too-many = تعداد رسیدهای ارسالی زیاد است. لطفاً { $n ->
    [one] { $minutes } دقیقه
   *[other] { $minutes } دقیقه
} دیگر دوباره امتحان کنید.
receipt-resent = 🧾 این رسید را قبلاً فرستاده‌اید. اگر تأیید نشده است، لطفاً عکس تازه‌ای از رسید همین سفارش بفرستید یا به { $support } پیام دهید.
receipt-reused = ⚠️ این رسید قبلاً ارسال شده و دوباره قابل استفاده نیست. لطفاً رسید واریز خودتان برای همین سفارش را بفرستید.
receipt-too-large = حجم این فایل زیاد است (حداکثر { $mb } مگابایت). لطفاً عکس رسید را بفرستید.
receipt-not-image = این فایل تصویر نیست. لطفاً رسید را به‌صورت عکس بفرستید.
receipt-under-review = 🧾 متشکریم! رسید سفارش <b>#{ $order }</b> در حال بررسی است. این کار معمولاً حداکثر { $n ->
    [one] { $minutes } دقیقه
   *[other] { $minutes } دقیقه
} طول می‌کشد؛ نتیجه را همین‌جا به شما اطلاع می‌دهیم.
receipt-order-closed = مهلت پرداخت این سفارش تمام شده و دیگر قابل پرداخت نیست. لطفاً یک خرید جدید شروع کنید.
payment-accepted-new = ✅ پرداخت سفارش <b>#{ $order }</b> تأیید شد. سرویس شما در حال آماده‌سازی است؛ لینک تا چند لحظهٔ دیگر همین‌جا می‌رسد.
payment-accepted-renewal = ✅ پرداخت سفارش <b>#{ $order }</b> تأیید شد: سرویس { $place } تا <b>{ $until }</b> تمدید شد.
payment-accepted-topup = ✅ پرداخت سفارش <b>#{ $order }</b> تأیید شد: { $data } به سرویس { $place } اضافه شد.
payment-rejected =
    ❌ رسید سفارش <b>#{ $order }</b> تأیید نشد: { $reason }
    لطفاً واریز خود را بررسی کنید و رسید جدیدی برای این سفارش بفرستید.
payment-revoked =
    ❌ پس از بررسی، پرداخت سفارش <b>#{ $order }</b> رد شد: { $reason }
    آنچه بابت این پرداخت دریافت کرده بودید پس گرفته شد. اگر فکر می‌کنید اشتباهی شده، به { $support } پیام بدهید.
reject-reason-wrong-amount = مبلغ واریزی درست نیست
reject-reason-unreadable = رسید خوانا نیست
reject-reason-not-received = مبلغ به حساب ما نرسیده است
reject-reason-duplicate = این رسید قبلاً استفاده شده است
reject-reason-other = پرداخت قابل تأیید نبود

review-caption =
    🧾 <b>پرداخت #{ $payment }</b> · { $status }
    سفارش #{ $order } · { $kind } · { $plan }
    مبلغ: <b>{ $amount }</b> · کارت { $card }
    مشتری: { $customer }
    سابقه: { $paid } پرداخت تأییدشده، { $rejected } ردشده
    ارسال: { $sent } · { $auto }
review-status-open = ⏳ در حال بررسی
review-status-accepted = ✅ تأیید شده توسط { $by } در { $at }
review-status-auto = 🤖 تأیید خودکار در { $at }
review-status-rejected = ❌ رد شده توسط { $by } در { $at }: { $reason }
review-auto-at = تأیید خودکار در { $at }
review-no-auto = بدون تأیید خودکار
order-kind-new = خرید جدید
order-kind-renewal = تمدید
order-kind-topup = خرید حجم اضافه
btn-accept = ✅ تأیید
btn-reject = ❌ رد
btn-reject-typed = ✍️ دلیل دیگر
admin-typed-reason = دستور /reject { $payment } را همراه با دلیل بفرستید.
admin-decided-accepted = ✅ پرداخت #{ $payment } تأیید شد.
admin-decided-rejected = ❌ پرداخت #{ $payment } رد شد.
admin-decided-auto-accepted = 🤖 پرداخت #{ $payment } به‌صورت خودکار تأیید شد.
admin-already = وضعیت پرداخت #{ $payment } قبلاً تعیین شده است: { $status } (توسط { $by } در { $at }).
admin-not-due = پرداخت #{ $payment } فعلاً مشمول تأیید خودکار نیست.
admin-no-payment = پرداختی با شمارهٔ #{ $payment } وجود ندارد.
admin-cannot = دربارهٔ پرداخت #{ $payment } نمی‌توان تصمیم گرفت: { $why }
admin-usage = نحوهٔ استفاده: { $command } &lt;شناسهٔ پرداخت&gt;
admin-queue-empty = هیچ رسیدی در انتظار بررسی نیست.
admin-queue = { $n } رسید در انتظار بررسی، به ترتیب از قدیمی‌ترین:
stats-title = 📊 <b>فروش</b>
stats-today = امروز
stats-days = { $days } روز اخیر
stats-window =
    <b>{ $window }</b>: { $revenue }
    { $orders } سفارش پرداخت‌شده · { $customers } مشتری جدید · { $trials } تست رایگان
stats-now = اکنون: { $active } اشتراک فعال · { $pending } رسید در انتظار بررسی

trial-choose = <b>تست رایگان</b>: { $n ->
    [one] { $days } روز
   *[other] { $days } روز
}، { $data }، { $devices }. لوکیشن را انتخاب کنید:
trial-granted = 🎁 سرویس تست شما در حال آماده‌سازی است. لینک تا چند لحظهٔ دیگر همین‌جا می‌رسد.
trial-queued = 🎁 سرویس تست شما رزرو شد، اما الان هیچ سروری نمی‌تواند آن را راه‌اندازی کند و در صف انتظار است. به تیم پشتیبانی خبر دادیم؛ لینک به‌محض آماده شدن همین‌جا می‌رسد.
trial-used = شما قبلاً از تست رایگان استفاده کرده‌اید. سرویس‌های ارزان هم داریم؛ نگاهی بیندازید!
trial-limited = درخواست‌های تست در حال حاضر زیاد است. لطفاً { $n ->
    [one] { $minutes } دقیقه
   *[other] { $minutes } دقیقه
} دیگر دوباره امتحان کنید.
trial-unavailable = فعلاً هیچ سروری در این لوکیشن جای تست ندارد. لوکیشن دیگری را امتحان کنید.
trial-disabled = فعلاً تست رایگان ارائه نمی‌شود.
trial-tag = تست

services-empty = هنوز هیچ سرویسی ندارید.
services-list = <b>سرویس‌های شما</b>
status-pending = ⏳ در حال راه‌اندازی
status-active = ✅ فعال
status-limited = 🚫 حجم تمام شده
status-expired = ⌛ منقضی شده
status-revoked = ⛔ لغو شده
time-not-started = پس از راه‌اندازی شروع می‌شود
time-left = { $n ->
    [one] { $days } روز باقی‌مانده
   *[other] { $days } روز باقی‌مانده
}
data-usage = { $used } از { $cap } گیگ مصرف شده ({ $left } گیگ باقی‌مانده)
data-usage-unlimited = { $used } گیگ مصرف شده (نامحدود)
device-link = دستگاه { $seat }: <code>{ $link }</code>
device-link-via = دستگاه { $seat } · { $via }: <code>{ $link }</code>
links-pending = لینک‌های شما به‌محض راه‌اندازی سرویس همین‌جا نمایش داده می‌شوند.
links-paused = لینک‌ها پس از تمدید سرویس (یا خرید حجم) دوباره کار می‌کنند.
links-ended = این سرویس پایان یافته و لینک‌های آن دیگر کار نمی‌کنند.
service-detail =
    <b>{ $place }</b> · { $status }
    { $time }
    { $data }

    لینک اشتراک (آن را در برنامهٔ خود وارد کنید):
    <code>{ $url }</code>

    { $links }
qr-caption = دستگاه { $seat }: این کد را در برنامهٔ V2Ray خود اسکن کنید.
qr-caption-via = دستگاه { $seat } · { $via }: این کد را در برنامهٔ V2Ray خود اسکن کنید.

notice-ready =
    ✅ <b>سرویس { $place } شما آماده است!</b>
    این لینک اشتراک را در v2rayNG، v2rayN، Hiddify یا Streisand وارد کنید:
    <code>{ $url }</code>

    یا برای هر دستگاه از لینک جداگانه استفاده کنید:
    { $links }
notice-limited = 🚫 حجم سرویس { $place } شما تمام شد. برای ادامه، حجم اضافه بخرید یا سرویس را تمدید کنید.
notice-expired = ⌛ سرویس { $place } شما منقضی شد. برای ادامهٔ استفاده، آن را تمدید کنید.
notice-revoked = ⛔ سرویس { $place } شما از طرف فروشگاه قطع شد. اگر سؤالی دارید، به پشتیبانی پیام بدهید.
notice-resumed = ✅ سرویس { $place } شما دوباره فعال شد.
notice-expires-soon = ⏰ سرویس { $place } شما { $n ->
    [one] { $days } روز
   *[other] { $days } روز
} دیگر تمام می‌شود. همین حالا تمدید کنید تا بدون قطعی ادامه دهید.
notice-data-almost = 📦 سرویس { $place } شما { $percent }٪ از حجمش را مصرف کرده است.
feed-url-replaced = انجام شد: لینک اشتراک قبلی دیگر کار نمی‌کند. لینک جدید را در برنامه‌هایتان وارد کنید.
