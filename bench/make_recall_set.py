#!/usr/bin/env python3
"""Makes a recall set for llmassist-bench-memory --recall-set: synthetic support dialogs in
English and Russian, each with facts planted in some of the user's messages (an order number,
a city, an e-mail address...), and later questions about those facts worded otherwise, in other
inflections. Seeded: the same arguments give the same file.

One JSON object a line:
  {"user": "ru-0002", "lang": "ru",
   "dialog": [{"role": "user", "text": "..."}, {"role": "assistant", "text": "..."},
              {"restart": true}, ...],
   "questions": [{"text": "...", "lang": "ru", "kind": "order", "fact": 5}, ...]}
where "fact" is the index in "dialog" of the user message that holds the answer, and
{"restart": true} begins a new session (the user sent /start).

Usage: bench/make_recall_set.py [--users 200] [--seed 1] [--out FILE]
"""

import argparse
import json
import random
import sys

# Cities with their Russian forms: nominative, prepositional ("в Казани"), genitive
# ("из Казани"), accusative ("в Казань").
CITIES = [
    ("Kazan", "Казань", "Казани", "Казани", "Казань"),
    ("Moscow", "Москва", "Москве", "Москвы", "Москву"),
    ("Samara", "Самара", "Самаре", "Самары", "Самару"),
    ("Novosibirsk", "Новосибирск", "Новосибирске", "Новосибирска", "Новосибирск"),
    ("Yekaterinburg", "Екатеринбург", "Екатеринбурге", "Екатеринбурга", "Екатеринбург"),
    ("Perm", "Пермь", "Перми", "Перми", "Пермь"),
    ("Tver", "Тверь", "Твери", "Твери", "Тверь"),
    ("Leeds", "Лидс", "Лидсе", "Лидса", "Лидс"),
]
NAMES_EN = ["Anna", "James", "Olivia", "Peter", "Maria", "David", "Sophie", "Tom"]
NAMES_RU = ["Анна", "Игорь", "Ольга", "Пётр", "Мария", "Дмитрий", "Светлана", "Артём"]
# Device kinds: English, then Russian nominative, accusative, genitive.
DEVICES = [
    ("phone", "телефон", "телефон", "телефона"),
    ("laptop", "ноутбук", "ноутбук", "ноутбука"),
    ("vacuum cleaner", "пылесос", "пылесос", "пылесоса"),
    ("kettle", "чайник", "чайник", "чайника"),
    ("tablet", "планшет", "планшет", "планшета"),
]
BRANDS = ["Samsung", "Xiaomi", "Lenovo", "Philips", "Bosch", "Huawei"]
PLANS = [("Premium", "Премиум"), ("Basic", "Базовый"), ("Family", "Семейный"), ("Pro", "Про")]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]
MONTHS_RU = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
             "сентября", "октября", "ноября", "декабря"]
STREETS = [("Lenin Street", "улица Ленина", "улицу Ленина"),
           ("Garden Road", "Садовая улица", "Садовую улицу"),
           ("Park Avenue", "Парковый проспект", "Парковый проспект"),
           ("Mira Avenue", "проспект Мира", "проспект Мира")]


def values(rng):
    city = rng.choice(CITIES)
    device = rng.choice(DEVICES)
    plan = rng.choice(PLANS)
    street = rng.choice(STREETS)
    day = rng.randint(1, 28)
    month = rng.randrange(12)
    login = rng.choice(["sunny", "kot", "max", "lena", "alex"]) + "_" + str(rng.randint(10, 999))
    return {
        "order": str(rng.randint(10000, 99999)),
        "city": city,
        "name_en": rng.choice(NAMES_EN),
        "name_ru": rng.choice(NAMES_RU),
        "email": "%s%d@example.com" % (login.split("_")[0], rng.randint(1, 99)),
        "phone": "+7 9%02d %03d-%02d-%02d" % (rng.randint(0, 99), rng.randint(0, 999),
                                               rng.randint(0, 99), rng.randint(0, 99)),
        "device": device,
        "brand": rng.choice(BRANDS),
        "plan": plan,
        "street": street,
        "house": str(rng.randint(1, 120)),
        "date_en": "%s %d" % (MONTHS_EN[month], day),
        "date_ru": "%d %s" % (day, MONTHS_RU[month]),
        "login": login,
    }


# Per kind and language: the messages that plant the fact, and the questions asking for it.
def facts(v):
    en_city, _, ru_prep, ru_gen, ru_acc = v["city"]
    en_dev, ru_dev, ru_dev_acc, ru_dev_gen = v["device"]
    en_plan, ru_plan = v["plan"]
    en_street, ru_street, ru_street_acc = v["street"]
    return {
        "order": {
            "en": ([f"My order number is {v['order']}.",
                    f"Hi, I'm writing about order {v['order']}, it still hasn't arrived.",
                    f"The order number is {v['order']}, I placed it last Tuesday."],
                   ["What was my order number?", "Can you remind me of my order number?",
                    "Which order number did I give you?", "What's the number of my order?"]),
            "ru": ([f"Мой номер заказа {v['order']}.",
                    f"Здравствуйте, пишу по заказу {v['order']}, он так и не пришёл.",
                    f"Номер заказа {v['order']}, оформлял во вторник."],
                   ["Какой у меня номер заказа?", "Напомните, пожалуйста, номер моего заказа.",
                    "Какой номер заказа я вам называл?", "По какому заказу я писал?"]),
        },
        "city": {
            "en": ([f"I live in {en_city}.",
                    f"I'm based in {en_city}, if that matters for delivery.",
                    f"We moved to {en_city} last year."],
                   ["Where do I live?", "Which city do I live in?",
                    "What city did I say I'm from?"]),
            "ru": ([f"Я живу в {ru_prep}.",
                    f"Я из {ru_gen}, если это важно для доставки.",
                    f"Мы переехали в {ru_acc} в прошлом году."],
                   ["Где я живу?", "В каком городе я живу?", "Из какого я города?"]),
        },
        "email": {
            "en": ([f"My email is {v['email']}.", f"You can reach me at {v['email']}."],
                   ["What email did I give you?", "Which email address is mine?",
                    "What is my email address?"]),
            "ru": ([f"Моя почта {v['email']}.", f"Пишите мне на почту {v['email']}."],
                   ["Какую почту я вам давал?", "Какой у меня адрес электронной почты?",
                    "На какую почту мне писать?"]),
        },
        "phone": {
            "en": ([f"My phone number is {v['phone']}.", f"Call me on {v['phone']}, please."],
                   ["What phone number did I give you?", "What's my phone number?"]),
            "ru": ([f"Мой телефон {v['phone']}.", f"Мой номер телефона {v['phone']}."],
                   ["Какой у меня номер телефона?", "Какой телефон я оставлял?"]),
        },
        "name": {
            "en": ([f"My name is {v['name_en']}.", f"I'm {v['name_en']}, by the way."],
                   ["What is my name?", "Do you remember my name?"]),
            "ru": ([f"Меня зовут {v['name_ru']}.", f"Я {v['name_ru']}, кстати."],
                   ["Как меня зовут?", "Вы помните, как меня зовут?"]),
        },
        "device": {
            "en": ([f"I bought a {v['brand']} {en_dev} from you last month.",
                    f"My {v['brand']} {en_dev} stopped working after a week."],
                   [f"Which {en_dev} did I buy?", f"What {en_dev} do I have?",
                    "Which brand was my device?"]),
            "ru": ([f"Я купил у вас {ru_dev_acc} {v['brand']} в прошлом месяце.",
                    f"Мой {ru_dev} {v['brand']} перестал работать через неделю."],
                   [f"Какой {ru_dev} я купил?", f"Какая у меня модель {ru_dev_gen}?",
                    "Какой фирмы было моё устройство?"]),
        },
        "plan": {
            "en": ([f"I'm on the {en_plan} plan.", f"My subscription is {en_plan}."],
                   ["Which plan am I on?", "What subscription do I have?"]),
            "ru": ([f"У меня тариф {ru_plan}.", f"Я подключил тариф «{ru_plan}»."],
                   ["Какой у меня тариф?", "На каком я тарифе?"]),
        },
        "birthday": {
            "en": ([f"My birthday is on {v['date_en']}.", f"I was born on {v['date_en']}."],
                   ["When is my birthday?", "What's my date of birth?"]),
            "ru": ([f"Мой день рождения {v['date_ru']}.", f"Я родился {v['date_ru']}."],
                   ["Когда у меня день рождения?", "Какого числа я родился?"]),
        },
        "address": {
            "en": ([f"Please deliver to {v['house']} {en_street}.",
                    f"My address is {v['house']} {en_street}."],
                   ["What delivery address did I give?", "Where should you deliver to?"]),
            "ru": ([f"Доставьте, пожалуйста, на {ru_street_acc}, {v['house']}.",
                    f"Мой адрес: {ru_street}, {v['house']}."],
                   ["Какой адрес доставки я указал?", "Куда доставить мой заказ?"]),
        },
        "login": {
            "en": ([f"My login is {v['login']}.", f"I sign in as {v['login']}."],
                   ["What is my login?", "Which username do I sign in with?"]),
            "ru": ([f"Мой логин {v['login']}.", f"Я захожу под логином {v['login']}."],
                   ["Какой у меня логин?", "Под каким логином я захожу?"]),
        },
    }


# What else users say: some of it shares words with the facts (order, delivery, phone, city).
FILLER_EN = [
    "Hello!", "Thanks, that helps.", "How long does delivery usually take?",
    "Can I pay by card on delivery?", "The app keeps showing an error when I log in.",
    "Do you have this jacket in a larger size?", "I want to return a pair of shoes.",
    "Is there a discount for students?", "My parcel tracking hasn't updated for two days.",
    "Can I change the delivery time?", "Where is the nearest pickup point?",
    "What is your refund policy?", "I didn't get the confirmation email.",
    "The courier didn't call me.", "Can you check the status of my order?",
    "How do I reset my password?", "Do you deliver to other cities?",
    "Is the warranty one year or two?", "My card was charged twice.", "OK, I'll wait.",
    "Could you send me the invoice?", "Which phone models do you have in stock?",
    "Can I order by phone?", "Do I need an account to order?", "The box arrived damaged.",
    "Can I pick it up myself?", "How much is express delivery?", "Great, thank you!",
    "Is the sale still on?", "I changed my mind, never mind.",
]
REPLY_EN = [
    "Of course, let me check.", "Delivery usually takes two to four days.",
    "Yes, you can pay by card to the courier.", "I'm sorry about that, let me look into it.",
    "You can return items within 14 days.", "The refund arrives within five working days.",
    "I've passed this on to our team.", "Is there anything else I can help with?",
    "Please try to sign in again in a few minutes.", "Here is the link to the form.",
]
FILLER_RU = [
    "Здравствуйте!", "Спасибо, помогло.", "Сколько обычно идёт доставка?",
    "Можно оплатить картой курьеру?", "Приложение выдаёт ошибку при входе.",
    "Есть ли эта куртка на размер больше?", "Хочу вернуть пару ботинок.",
    "Есть ли скидка для студентов?", "Трек посылки не обновляется уже два дня.",
    "Можно изменить время доставки?", "Где ближайший пункт выдачи?",
    "Как у вас с возвратом денег?", "Мне не пришло письмо с подтверждением.",
    "Курьер мне так и не позвонил.", "Проверьте, пожалуйста, статус заказа.",
    "Как сбросить пароль?", "Вы доставляете в другие города?",
    "Гарантия год или два?", "С карты списали деньги дважды.", "Хорошо, подожду.",
    "Пришлите, пожалуйста, счёт.", "Какие модели телефонов есть в наличии?",
    "Можно заказать по телефону?", "Нужен ли аккаунт, чтобы сделать заказ?",
    "Коробка пришла помятой.", "Можно забрать самому?", "Сколько стоит срочная доставка?",
    "Отлично, спасибо!", "Распродажа ещё идёт?", "Передумал, не надо.",
]
REPLY_RU = [
    "Конечно, сейчас проверю.", "Доставка обычно занимает от двух до четырёх дней.",
    "Да, можно оплатить картой курьеру.", "Простите за неудобство, сейчас разберусь.",
    "Вернуть товар можно в течение 14 дней.", "Деньги вернутся в течение пяти рабочих дней.",
    "Я передал ваш вопрос коллегам.", "Могу ли я ещё чем-нибудь помочь?",
    "Попробуйте войти ещё раз через несколько минут.", "Вот ссылка на форму.",
]


def user_record(rng, index, lang):
    v = values(rng)
    table = facts(v)
    kinds = rng.sample(sorted(table), rng.randint(1, 3))
    filler, replies = (FILLER_RU, REPLY_RU) if lang == "ru" else (FILLER_EN, REPLY_EN)
    # Turns before, between and after the facts; at least 6 exchanges after the last fact, so
    # that it is out of the recent window (8 messages) when the questions come.
    dialog = []

    def exchange():
        dialog.append({"role": "user", "text": rng.choice(filler)})
        dialog.append({"role": "assistant", "text": rng.choice(replies)})

    for _ in range(rng.randint(0, 4)):
        exchange()
    planted = []
    for kind in kinds:
        statements, questions = table[kind][lang]
        planted.append((kind, len(dialog), questions))
        dialog.append({"role": "user", "text": rng.choice(statements)})
        dialog.append({"role": "assistant", "text": rng.choice(replies)})
        for _ in range(rng.randint(1, 6)):
            exchange()
    if rng.random() < 0.4:
        dialog.append({"restart": True})
    for _ in range(rng.randint(6, 20)):
        exchange()
    asked = []
    for kind, fact, questions in planted:
        for text in rng.sample(questions, min(2, len(questions))):
            asked.append({"text": text, "lang": lang, "kind": kind, "fact": fact})
    rng.shuffle(asked)
    return {"user": "%s-%04d" % (lang, index), "lang": lang, "dialog": dialog,
            "questions": asked}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="dialogs, half in each language")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="the JSONL file (default: standard output)")
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be positive")
    rng = random.Random(args.seed)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    with out:
        for i in range(args.users):
            record = user_record(rng, i, "ru" if i % 2 else "en")
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
