# vpnshop — Russian (ru). Same keys and variables as locales/en/main.ftl (a test checks).
# Numbers arrive already formatted; $n only selects the plural form (one / few / many / other).

language-name = 🇷🇺 Русский
language-choose = Выберите язык:
language-set = Установлен русский язык.

menu-title = Привет, { $name }! Быстрый и приватный VPN на V2Ray. Что хотите сделать?
menu-buy = 🛒 Купить тариф
menu-trial = 🎁 Попробовать бесплатно
menu-services = 📱 Мои подписки
menu-language = 🌐 Язык
menu-help = ❓ Помощь

btn-back = ⬅️ Назад
btn-menu = 🏠 Меню
btn-cancel = ✖️ Отмена
btn-resume = ▶️ Продолжить
btn-start-over = 🔄 Начать заново
btn-qr = 🔳 QR-коды
btn-renew = 🔁 Продлить
btn-topup = ➕ Докупить трафик
btn-new-url = 🔄 Новая ссылка подписки
btn-service = 📱 Эта подписка
btn-cancel-order = ✖️ Отменить заказ
btn-order-awaiting = 💳 Заказ #{ $order } · { $price } · ждёт оплаты
menu-awaiting-payment = У вас есть заказ, который ждёт оплаты: нажмите на него, чтобы увидеть реквизиты.

help =
    <b>Как это работает</b>
    1. Купите тариф (или возьмите бесплатный пробный период).
    2. Вы получите ссылку и QR-код для каждого устройства, а также ссылку на подписку.
    3. Добавьте ссылку на подписку в v2rayNG (Android), v2rayN (Windows), Hiddify или Streisand (iOS).
    Остались вопросы? Пишите: { $support }.
unknown-message = Извините, я вас не понял.
stale-button = Это меню устарело, вот актуальное.
not-found = Это больше недоступно.
option-unavailable = Этот вариант недоступен. Пожалуйста, выберите другой.
slow-down = Слишком быстро! Подождите немного.
error-generic = Что-то пошло не так на нашей стороне. Попробуйте ещё раз через минуту.
banned = Ваш аккаунт заблокирован. Если вы считаете, что это ошибка, напишите: { $support }.

resume-offer = У вас есть незавершённая покупка: { $summary }. Продолжить с того же места?
purchase-cancelled = Покупка отменена.
extend-trial = Пробный период нельзя продлить или докупить к нему трафик. Купите тариф, чтобы продолжить.
extend-pending = Подписка ещё настраивается. Продлить её или докупить трафик можно, когда она заработает.
extend-revoked = Эту подписку завершил магазин, продлить её нельзя. Купите новый тариф или напишите { $support }.
topup-expired = Срок подписки истёк: сначала продлите её, затем можно докупить трафик.
topup-unlimited = У этой подписки уже безлимитный трафик.
price-unavailable = Сейчас не получается рассчитать цену в вашей валюте. Попробуйте позже или напишите { $support }.

days = { $n ->
    [one] { $days } день
    [few] { $days } дня
    [many] { $days } дней
   *[other] { $days } дня
}
devices = { $n ->
    [one] { $devices } устройство
    [few] { $devices } устройства
    [many] { $devices } устройств
   *[other] { $devices } устройства
}
data-gb = { $gb } ГБ
data-mb = { $mb } МБ
data-unlimited = Безлимитный трафик

location-item = { $flag } { $name } · { $n ->
    [one] { $servers } сервер
    [few] { $servers } сервера
    [many] { $servers } серверов
   *[other] { $servers } сервера
}
buy-location = <b>Выберите локацию</b>
buy-no-locations = Извините, сейчас нет доступных локаций. Загляните чуть позже.
buy-duration = <b>На какой срок?</b>
buy-devices = <b>Сколько устройств?</b>
buy-data = <b>Сколько трафика?</b>
buy-so-far = Вы выбрали: { $picked }
buy-summary =
    <b>Ваш тариф</b>
    { $picked }
    Цена: <b>{ $price }</b>
    Выберите способ оплаты:
buy-summary-renewal =
    <b>Продление</b>
    { $picked }
    Цена: <b>{ $price }</b>
    Выберите способ оплаты:
buy-summary-topup =
    <b>Дополнительный трафик</b>
    { $picked }
    Цена: <b>{ $price }</b>
    Выберите способ оплаты:
pay-none = Оплата сейчас недоступна. Попробуйте позже.
pay-method-card = 💳 Перевод с карты на карту
pay-method-stripe = 💳 Карта (Stripe)
pay-method-zarinpal = 💳 Zarinpal
pay-card =
    Заказ <b>#{ $order }</b>: <b>{ $price }</b>
    Переведите ровно эту сумму на карту:
    <code>{ $card }</code>
    { $holder } · { $bank }
    Оплатите до <b>{ $deadline }</b>, затем пришлите сюда фото чека. Проверка обычно занимает до { $n ->
        [one] { $minutes } минуты
        [few] { $minutes } минут
        [many] { $minutes } минут
       *[other] { $minutes } минуты
    }; подписка заработает сразу после неё.
btn-pay-online = 💳 Оплатить { $price }
pay-online =
    Заказ <b>#{ $order }</b>: <b>{ $price }</b>
    Нажмите кнопку, чтобы оплатить на защищённой странице. Услуга заработает, как только оплата подтвердится; мы напишем здесь.
pay-online-unavailable = Платёжный сервис сейчас не отвечает, поэтому заказ <b>#{ $order }</b> ({ $price }) остаётся открытым. Попробуйте ещё раз через минуту.
pay-online-refused = Платёжный сервис не смог принять заказ <b>#{ $order }</b> ({ $price }). Выберите другой способ оплаты или напишите нам.
btn-try-again = 🔄 Попробовать снова
payment-refunded = ↩️ Оплата заказа <b>#{ $order }</b> возвращена, поэтому услуга завершена. Вопросы: { $support }.
paid-order-paid = ✅ Заказ <b>#{ $order }</b> оплачен. Услуга — в разделе «Мои услуги».
paid-order-waiting = ⏳ Заказ <b>#{ $order }</b> ещё не оплачен. Если вы только что заплатили, оплата подтверждается; мы напишем здесь.
paypage-title = Оплата
paypage-back = Вернуться в бот
paypage-telegram = Вернитесь в Telegram, чтобы продолжить.
paypage-return = Спасибо. Вернитесь в бот в Telegram: там виден заказ <b>#{ $order }</b>, и бот сообщит, как только оплата подтвердится.
paypage-bad-request = Эта ссылка оплаты неполная или повреждена. Если вы заплатили, оплата всё равно подтвердится автоматически, и бот вам сообщит.
paypage-unknown = Мы не нашли этот платёж. Если вы заплатили, напишите { $support } и укажите номер платежа.
paypage-busy = Сейчас не удалось проверить ваш платёж. Если вы заплатили, он подтвердится автоматически в течение нескольких минут, и бот вам сообщит; можно также обновить эту страницу чуть позже.
zarinpal-paid = ✅ Оплата получена: заказ <b>#{ $order }</b> оплачен. Сервис готовится, бот пришлёт его вам в Telegram.
zarinpal-cancelled = Оплата заказа <b>#{ $order }</b> отменена, заказ не оплачен. Вы можете оплатить его снова через бот.
zarinpal-not-paid = Zarinpal не подтвердил оплату заказа <b>#{ $order }</b>, заказ не оплачен. Если деньги списались, банк их вернёт. Вы можете оплатить снова через бот.
zarinpal-invalid = Этот платёж заказа <b>#{ $order }</b> больше не действителен в Zarinpal, заказ не оплачен. Начните новую оплату через бот.
zarinpal-mismatch = Оплаченная сумма не совпадает с суммой заказа <b>#{ $order }</b>, поэтому заказ не выполнен. Мы уже знаем об этом; напишите, пожалуйста, { $support }.
zarinpal-held = Ваш платёж за заказ <b>#{ $order }</b> поступил, но заказ уже был оплачен, поэтому мы проверим его вручную. Напишите, пожалуйста, { $support }.
zarinpal-already-paid = Заказ <b>#{ $order }</b> уже был оплачен, поэтому этот платёж не списан. Если деньги ушли с вашего счёта, Zarinpal и ваш банк вернут их автоматически.
zarinpal-pending = Пока не удалось подтвердить оплату заказа <b>#{ $order }</b>. Если вы заплатили, она подтвердится автоматически в течение нескольких минут, и бот вам сообщит.
btn-copy-card = 📋 Скопировать номер карты
btn-payment-details = 💳 Реквизиты для оплаты
receipt-hint = 🧾 Пришлите сюда чек о переводе в виде <b>фото</b> (или файла-изображения).
receipt-no-order = У вас нет заказа, который ждёт оплаты переводом на карту. Сначала выберите тариф, затем пришлите чек.
receipt-already = 🧾 Чек по заказу <b>#{ $order }</b> проверяется. Мы сообщим результат здесь.
receipt-too-many = Слишком много чеков. Подождите { $n ->
    [one] { $minutes } минуту
    [few] { $minutes } минуты
    [many] { $minutes } минут
   *[other] { $minutes } минуты
} и попробуйте снова.
receipt-resent = 🧾 Вы уже присылали этот чек. Если его не приняли, пришлите новое фото чека по этому заказу или напишите { $support }.
receipt-reused = ⚠️ Этот чек уже присылали раньше, использовать его повторно нельзя. Пришлите чек о своём переводе по этому заказу.
receipt-too-large = Файл слишком большой (максимум { $mb } МБ). Пришлите фото чека.
receipt-not-image = Это не изображение. Пришлите чек в виде фото.
receipt-under-review = 🧾 Спасибо! Чек по заказу <b>#{ $order }</b> на проверке. Обычно это занимает до { $n ->
    [one] { $minutes } минуты
    [few] { $minutes } минут
    [many] { $minutes } минут
   *[other] { $minutes } минуты
}; мы сообщим результат здесь.
receipt-order-closed = Этот заказ больше нельзя оплатить (время на оплату истекло). Оформите новую покупку.
payment-accepted-new = ✅ Оплата заказа <b>#{ $order }</b> подтверждена. Настраиваем подписку; ссылка придёт сюда через несколько секунд.
payment-accepted-renewal = ✅ Оплата заказа <b>#{ $order }</b> подтверждена: подписка { $place } продлена до <b>{ $until }</b>.
payment-accepted-topup = ✅ Оплата заказа <b>#{ $order }</b> подтверждена: к подписке { $place } добавлено { $data }.
payment-rejected =
    ❌ Чек по заказу <b>#{ $order }</b> не принят: { $reason }
    Проверьте перевод и пришлите новый чек по этому заказу.
payment-revoked =
    ❌ После проверки оплата заказа <b>#{ $order }</b> отклонена: { $reason }
    Всё, что было выдано по этой оплате, отозвано. Если вы считаете, что это ошибка, напишите { $support }.
reject-reason-wrong-amount = неверная сумма
reject-reason-unreadable = чек невозможно прочитать
reject-reason-not-received = деньги не поступили
reject-reason-duplicate = этот чек уже использовался
reject-reason-other = оплату не удалось подтвердить

review-caption =
    🧾 <b>Платёж #{ $payment }</b> · { $status }
    Заказ #{ $order } · { $kind } · { $plan }
    Сумма: <b>{ $amount }</b> · карта { $card }
    Клиент: { $customer }
    История: оплачено { $paid }, отклонено { $rejected }
    Отправлен { $sent } · { $auto }
review-status-open = ⏳ на проверке
review-status-accepted = ✅ принят ({ $by }, { $at })
review-status-auto = 🤖 принят автоматически { $at }
review-status-rejected = ❌ отклонён ({ $by }, { $at }): { $reason }
review-auto-at = автоподтверждение { $at }
review-no-auto = без автоподтверждения
order-kind-new = новая подписка
order-kind-renewal = продление
order-kind-topup = докупка трафика
btn-accept = ✅ Принять
btn-reject = ❌ Отклонить
btn-reject-typed = ✍️ Другая причина
admin-typed-reason = Отправьте /reject { $payment } и через пробел причину.
admin-decided-accepted = ✅ Платёж #{ $payment } принят.
admin-decided-rejected = ❌ Платёж #{ $payment } отклонён.
admin-decided-auto-accepted = 🤖 Платёж #{ $payment } принят автоматически.
admin-already = Платёж #{ $payment } уже обработан: { $status } ({ $by }, { $at }).
admin-not-due = Платёж #{ $payment } пока не подлежит автоматическому подтверждению.
admin-no-payment = Платежа #{ $payment } не существует.
admin-cannot = По платежу #{ $payment } нельзя принять решение: { $why }
admin-usage = Использование: { $command } &lt;номер платежа&gt;
admin-queue-empty = Чеков на проверке нет.
admin-queue = Ждут проверки: { $n }. Сначала самые старые:
stats-title = 📊 <b>Продажи</b>
stats-today = Сегодня
stats-days = { $days ->
    [one] Последний { $days } день
    [few] Последние { $days } дня
    [many] Последние { $days } дней
   *[other] Последние { $days } дня
}
stats-window =
    <b>{ $window }</b>: { $revenue }
    Оплаченных заказов: { $orders } · новых клиентов: { $customers } · пробных: { $trials }
stats-now = Сейчас: активных подписок — { $active } · ждут проверки — { $pending }

trial-choose = <b>Пробный период</b>: { $n ->
    [one] { $days } день
    [few] { $days } дня
    [many] { $days } дней
   *[other] { $days } дня
}, { $data }, { $devices }. Выберите локацию:
trial-granted = 🎁 Готовим ваш пробный доступ. Ссылка придёт сюда через несколько секунд.
trial-queued = 🎁 Пробный доступ за вами, но сейчас ни один сервер не может его настроить, поэтому он в очереди. Мы сообщили команде; ссылка придёт сюда, как только всё будет готово.
trial-used = Вы уже использовали бесплатный пробный период. Но у нас есть совсем недорогие тарифы — загляните!
trial-limited = Сейчас слишком много запросов на пробный период. Попробуйте снова через { $n ->
    [one] { $minutes } минуту
    [few] { $minutes } минуты
    [many] { $minutes } минут
   *[other] { $minutes } минуты
}.
trial-unavailable = В этой локации сейчас нет серверов для пробного периода. Попробуйте другую локацию.
trial-disabled = Бесплатный пробный период сейчас недоступен.
trial-tag = пробная

services-empty = У вас пока нет подписок.
services-list = <b>Ваши подписки</b>
status-pending = ⏳ настраивается
status-active = ✅ активна
status-limited = 🚫 трафик закончился
status-expired = ⌛ истекла
status-revoked = ⛔ отключена
time-not-started = Начнёт действовать после настройки
time-left = { $n ->
    [one] Остался { $days } день
    [few] Осталось { $days } дня
    [many] Осталось { $days } дней
   *[other] Осталось { $days } дня
}
data-usage = Использовано { $used } из { $cap } ГБ (осталось { $left } ГБ)
data-usage-unlimited = Использовано { $used } ГБ (безлимит)
device-link = Устройство { $seat }: <code>{ $link }</code>
device-link-via = Устройство { $seat } · { $via }: <code>{ $link }</code>
links-pending = Ссылки появятся здесь, как только подписка будет настроена.
links-paused = Ссылки снова заработают после продления подписки (или покупки трафика).
links-ended = Эта подписка завершена, её ссылки больше не работают.
service-detail =
    <b>{ $place }</b> · { $status }
    { $time }
    { $data }

    Ссылка на подписку (добавьте её в приложение):
    <code>{ $url }</code>

    { $links }
qr-caption = Устройство { $seat }: отсканируйте этот код в приложении V2Ray.
qr-caption-via = Устройство { $seat } · { $via }: отсканируйте этот код в приложении V2Ray.

notice-ready =
    ✅ <b>Подписка { $place } готова!</b>
    Добавьте эту ссылку на подписку в v2rayNG, v2rayN, Hiddify или Streisand:
    <code>{ $url }</code>

    Или используйте отдельную ссылку для каждого устройства:
    { $links }
notice-limited = 🚫 По подписке { $place } закончился трафик. Докупите трафик или продлите подписку, чтобы продолжить.
notice-expired = ⌛ Срок подписки { $place } истёк. Продлите её, чтобы продолжить пользоваться.
notice-revoked = ⛔ Магазин отключил подписку { $place }. Если есть вопросы, напишите в поддержку.
notice-resumed = ✅ Подписка { $place } снова работает.
notice-expires-soon = ⏰ Подписка { $place } закончится через { $n ->
    [one] { $days } день
    [few] { $days } дня
    [many] { $days } дней
   *[other] { $days } дня
}. Продлите сейчас, чтобы пользоваться без перерыва.
notice-data-almost = 📦 По подписке { $place } израсходовано { $percent }% трафика.
feed-url-replaced = Готово: старая ссылка подписки больше не работает. Добавьте новую в приложения.
