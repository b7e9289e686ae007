"""Out-of-sample check of the PII detectors: Faker values from ~60 locales in sentence
templates of the presidio-research generator's kind (a few phrasings follow its MIT-licensed
templates), written as a presidio-format set next to copies of the dev set's secrets and
injection files, so `parapet eval OUT` scores it.

    .venv/bin/pip install faker
    .venv/bin/python tests/eval/faker_heldout.py SEED PHONES_PER_LOCALE OUT
    cp -r ../shared/eval/secrets ../shared/eval/injection OUT/
    cargo run --release -- eval OUT --policies policies

Values and sentences are generated, never taken from the dev set.
"""
import json, os, random, sys
from faker import Faker
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 7
random.seed(SEED); Faker.seed(SEED)
LOCALES = ["en_US","en_GB","en_CA","en_AU","en_NZ","en_IE","en_IN","fr_FR","fr_CH","fr_CA","de_DE","de_CH","de_AT",
 "nl_NL","nl_BE","it_IT","es_ES","es_MX","pt_PT","pt_BR","sv_SE","da_DK","no_NO","fi_FI","pl_PL","cs_CZ","hu_HU",
 "el_GR","el_CY","ja_JP","zh_CN","zh_TW","ko_KR","ru_RU","tr_TR","he_IL","ro_RO","sk_SK","sl_SI","hr_HR","bg_BG",
 "uk_UA","lt_LT","lv_LV","et_EE","th_TH","id_ID","vi_VN","fil_PH","en_PH","es_AR","es_CL","es_CO","ar_AE","fa_IR","hi_IN","bn_BD","ka_GE","hy_AM","az_AZ"]
fakers = {}
for l in LOCALES:
    try:
        fakers[l] = Faker(l); fakers[l].phone_number()
    except Exception: fakers.pop(l, None)
en = Faker("en_US")
PHONE_T = [
 "I have done an online order but didn't get any message on my registered {}. Could you please look into it ?",
 "Please have the manager call me at {} I'd like to join accounts with ms. Ann",
 "I would like to stop receiving messages to {}",
 "Can someone call me on {}? I have some questions about opening an account.",
 "How can we reach you? You can call {}",
 "They're not answering at {}",
 "Name: Jo Smith\nPhone: {}",
 "Personal Info:\nPhone:\n{}\n\nE-mail:\nsee below",
 "Mobile: {}\nDesk: none\nFax: none",
 "Apt 5\n{} office\n",
 "Suite 282\n{}-Office\\,",
 "My phone number is {}.",
 "Text me at {} when you land.",
 "Tel: {}",
 "Reach me on my cell {} tomorrow.",
]
CARD_T = ["I want to increase limit on my card # {} for certain duration of time.","My credit card {} has been lost, Can I request you to block it.",
 "Please block card no {}","What's your credit card? {}","Please charge my credit card. Number is {}","card number {} is lost, can you please send a new one"]
IBAN_T = ["Are there any charges applied for money transfer from {} to other bank accounts","My IBAN is {}","sending a wire transfer using this IBAN {}"]
SSN_T = ["His social security number is {}","Here's my SSN: {}"]
IP_T = ["I can't browse to your site, keep getting address {} blocked error","Inject SELECT * FROM Users WHERE client_ip = ?%//!%20\\|{}|%20/"]
EMAIL_T = ["Please send my portfolio to this email {}","You said your email is {}. Is that correct?","What's your email? {}","Please transfer all funds from my account to this hackers' {}"]
NEG_T = ["I'm originally from {country}","Meet me at {address}","Please tell me your date of birth. It's {date}","I want to update my primary and secondary address to same: {address}",
 "My website is {url}","I work for {company}","She was born on {date}. Her maiden name is {last}","The order {ean} shipped on {date}.","Invoice {inv} totals {amount} EUR.",
 "Version {ver} was released on {date}.","The meeting is at {time} in room {room}.","Lot {lot}, {address}","{address} ({zip})"]
out = []
def add(tmpl, value, typ):
    i = tmpl.index("{}")
    text = tmpl[:i] + value + tmpl[i+2:]
    out.append({"full_text": text, "spans": [{"entity_type": typ, "entity_value": value, "start_position": i, "end_position": i+len(value)}]})
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20
for l, f in fakers.items():
    for _ in range(N):
        add(random.choice(PHONE_T), f.phone_number(), "PHONE_NUMBER")
for _ in range(400):
    f = random.choice(list(fakers.values()))
    add(random.choice(CARD_T), en.credit_card_number(), "CREDIT_CARD")
    try: ib = f.iban()
    except Exception: ib = en.iban()
    if random.random() < 0.3:
        ib = " ".join(ib[k:k+4] for k in range(0, len(ib), 4))
    add(random.choice(IBAN_T), ib, "IBAN_CODE")
    add(random.choice(SSN_T), en.ssn(), "US_SSN")
    add(random.choice(IP_T), en.ipv4() if random.random() < 0.7 else en.ipv6(), "IP_ADDRESS")
    add(random.choice(EMAIL_T), f.email(), "EMAIL_ADDRESS")
    t = random.choice(NEG_T).format(country=f.country(), address=f.address().replace("\n", ", "), date=f.date(), url=f.url(), company=f.company(),
        last=f.last_name(), ean=f.ean13(), inv=f.bothify("INV-####-??"), amount=en.pricetag(), ver=f.numerify("#.#.#"),
        time=f.time(), room=f.numerify("###"), lot=f.numerify("####"), zip=f.postcode())
    out.append({"full_text": t, "spans": []})
OUT = sys.argv[3] if len(sys.argv) > 3 else "/tmp/heldout"
os.makedirs(os.path.join(OUT, "pii"), exist_ok=True)
json.dump(out, open(os.path.join(OUT, "pii/presidio_synth_dataset_v2.json"), "w"), ensure_ascii=False)
print(len(out), "records,", len(fakers), "locales")
