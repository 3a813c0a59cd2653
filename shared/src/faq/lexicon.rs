//! Bilingual (English, Swahili, Sheng) concept lexicon shared by every tenant.
//!
//! Words in different languages that ask about the same thing map to one concept id,
//! so "mnafungua", "opening" and "close" all meet on `HOURS`. The table is data, parsed
//! once per process.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::fuzzy::DeleteIndex;
use super::normalize::{is_stopword, stem, SW_PREFIXES};

/// How much a concept says about what the customer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A topic a FAQ entry is about (hours, delivery, payment...).
    Topic,
    /// A thing the topic is about (guitar, braids, cement...).
    Entity,
    /// Carries some meaning but is shared by many questions (have, sell, today...).
    Weak,
    /// Greeting: only decides canned answers.
    Greeting,
    /// Thanks: only decides canned answers.
    Thanks,
}

impl Class {
    pub(crate) fn base_weight(self) -> f32 {
        match self {
            Class::Topic => 3.0,
            Class::Entity => 2.0,
            Class::Weak => 0.8,
            Class::Greeting | Class::Thanks => 1.0,
        }
    }
    pub(crate) fn is_social(self) -> bool {
        matches!(self, Class::Greeting | Class::Thanks)
    }
}

/// `CONCEPT CLASS: word, word:strength, multi word phrase, ...`
/// Strength (default 1) scales how strongly a word signals its concept: "where" hints at
/// LOCATION less than "located" does, so "where can I park" stays a parking question.
const TABLE: &str = r#"
HOURS T: fanya kazi:0.7, mnafanya kazi, mnafanyanga kazi, work:0.4, working:0.4, open, opening, opens, opened, close, closing, closes, closed, hours, hour, business hours, opening hours, working hours, operating hours, opening times, closing time, fungua, funguliwa, fungwa, funga, saa za kazi, masaa, 24 hours, open late, late:0.6, early:0.5, operate:0.7, operating:0.7, wazi, mko wazi, open on, what time do you open
TIME W: lini:0.7, when will, till what time, until what time, up to what time, time, times, saa ngapi, what time, when, until, till when, am, pm, saa, timing, mapema, usiku, asubuhi:0.5, jioni:0.5, morning:0.5, evening:0.5, tonight:0.5, now:0.3, saa hii
DAY W: day, days, siku, today, tomorrow, leo, kesho, monday, tuesday, wednesday, thursday, friday, saturday, sunday, saturdays, sundays, jumatatu, jumanne, jumatano, alhamisi, ijumaa, jumamosi, jumapili, weekend, weekday, weekdays, holiday, holidays, public holiday, public holidays, sikukuu, daily, everyday, every day, wikendi, weekends, wiki hii, this week:0.6, sundays:1, public holiday
WHERE W: where, wapi, whereabouts
WEEK W: week, weeks, weekly, wiki, kila wiki
MONTH W: month, months, monthly, mwezi, miezi, kila mwezi
YEAR W: year, years, yearly, annual, annually, mwaka, miaka, kila mwaka
LOCATION T: located, location, locate, address, directions, direction, situated, premises, map, maps, google maps, pin, pin location, mahali, get to you, get there, get to, find you, landmark, opposite:0.5, next to:0.4, near:0.5, building:0.4, street:0.6, road:0.5, patikana:0.5, where:0.5, wapi:0.6, area gani, mtaa gani, which area, what area, where exactly, how far:0.7, distance:0.6, umbali:0.6, directions to, mko area gani, based:0.7, where are you based, pande gani, upande gani, estate gani, town gani, mko pande, wapi hasa, whereabouts
SHOP W: shop, store, duka, outlet, branch, branches, place:0.5
PAY T: cash on delivery, pay on delivery, paybill number, paybill no, account number, pay, paying, payment, payments, paid, lipa, lipia, lipe, lipwa, malipo, mpesa, m pesa, till, till number, till no, paybill, pay bill, buy goods, lipa na mpesa, cash, card:0.6, cards:0.5, credit card, debit card, visa, mastercard, bank transfer, bank, accept:0.3, kubali:0.3, kubaliwa:0.3, airtel money, pesa:0.4, cheque, cheques, pochi, pochi la biashara, mobile money, tuma pesa, send money, lipa kwa, payed, by card, pay by card, card payment, card payments, pay with card, accept card, accept cards, take card, take cards, mnachukua card, card mnachukua, mnakubali card, card mnakubali, card iko, card inakubaliwa
NUMBER W: number, numbers, namba, nambari, no
CONTACT T: number:0.5, namba:0.5, nambari:0.5, your number, namba yenu
DELIVER T: beba:0.6, kubeba:0.6, bebwa:0.6, nileteea, niletee, mnaleta, kuleta, delivered to, deliver, delivery, deliveries, delivering, delivered, leta, letea, peleka, pelekea, tuma:0.6, tumia:0.6, tumiwa:0.6, send:0.6, ship, shipping, courier, couriers, dispatch, transport:0.7, safirisha, countrywide, upcountry:0.7, rider, riders, boda:0.6, glovo, uber eats, bolt food, jumia food, drop off, doorstep, door step, drop off at, deliver it, bring it to, send it to, fikisha, kufikisha, fikishiwa
REPAIR T: pasuka, imepasuka, crack, cracked, cracks, vunjika, imevunjika, shattered, spoilt screen, dead:0.5, repair, repairs, repairing, repaired, fix, fixing, fixed, tengeneza, tengenezwa, rekebisha, haribika, haribiwa, imeharibika, broken, broke, spoilt, spoiled, damaged, torn, ripped, raruka, chanika, faulty, not working:0.8, stopped working:0.6, stop working:0.6, stops working:0.6, service:0.6, servicing, maintenance, technician, fundi:0.7, imekufa:0.8, imeharibika, not working, doesnt work, does not work, haifanyi kazi, haiwaki:0.8, mend
PRICE T: per hour:0.6, per minute:0.6, per page:0.6, per day:0.6, per month:0.5, per piece:0.6, per person:0.6, per metre:0.6, per meter:0.6, per litre:0.6, kwa saa:0.5, hw much, amount:0.6, kiasi:0.6, pay how much, ni ngapi, charge ngapi, per km:0.6, per kg:0.5, cheapest, lowest price, price list, price, prices, pricing, cost, costs, costing, charge, charges, fee, fees, rate, rates, how much, bei, pesa ngapi, bei gani, gharama, ngapi:0.6, much:0.5, shillings, shilling, ksh, kes, bob, expensive, cheap:0.7, affordable:0.7, quote:0.7, quotation:0.7, gharimu, inagharimu, doh ngapi, ganji ngapi, mbao ngapi, bei ngapi, ni doh ngapi, how much does it cost, how much is it, soo:0.5, thao:0.5, mbao:0.5, ngiri:0.4, inaenda aje, inaenda ngapi, inaenda how much, inakaa ngapi, inakaa aje, zinaenda aje, zinaenda ngapi, goes for how much, go for how much, ni how much, tariff, tariffs, price range, inauzwa ngapi, inauzwa pesa ngapi, mnauza ngapi, mnauza aje, unauza ngapi, bei yenu, bei ya
STOCK W: have, has, stock, stocks, stocked, in stock, available, availability, sell, sells, selling, sold, uza, uzwa, carry, patikana, mko na, iko na, kuna, offer:0.5, offers:0.5, provide:0.5
BUY W: buy, buying, bought, purchase, nunua, order:0.5, ordering:0.5, agiza, kuagiza, place an order, shika:0.4
SECONDHAND T: second hand, secondhand, used, mitumba, refurbished, pre owned, preowned, ex uk, old:0.5
INSTALLMENT T: pay half, half now, balance later, the rest later, in bits, part payment, partial payment, installment, installments, instalment, instalments, lipa pole pole, pole pole, mdogo mdogo, kidogo kidogo, bit by bit, layaway, lay away, lay by, hire purchase, deposit:0.6, in parts, polepole, mdogomdogo, kidogokidogo, slowly:0.4, lipa kidogo
CREDIT T: credit, credit account, loan, loans, pay later, lipa baadaye, lipe baadaye, nilipe baadaye, deni, mkopo, account:0.5, terms:0.4
WARRANTY T: warranty, warranties, guarantee, guarantees, guaranteed, dhamana
RETURN T: change it, change size, swap:0.7, swapping:0.7, bring it back, bring back, take back, send back, take it back, wrong:0.4, return, returns, returned, returning, refund, refunds, refunded, exchange, exchanges, rudisha, rudishiwa, money back, badilisha:0.5, replace:0.6, replacement:0.6
HIRE T: hire, hire out, rent, rental, rentals, rent out, renting, lease, kodi, kukodisha, kodisha, kodi ya
REGISTER T: register, registration, registering, enroll, enrol, enrolling, enrollment, enrolment, enrolled, sign up, signup, join:0.7, joining:0.7, admission, admissions, jiandikisha, andikisha, sajili, sajiliwa, membership:0.7, jiunga, kujiunga, become a member, sign me up
REQUIREMENTS T: requirements, requirement, required, require, documents:0.7, docs:0.6, what do i need, what should i bring, what to bring, mahitaji, vitu gani nahitaji, nahitaji nini, ninahitaji nini, qualifications:0.7, eligible, eligibility
ALTER T: alter, alters, altered, altering, alteration, alterations, adjust, adjusting, adjusted, adjustment, adjustments, modify, modification, resize, resizing, shorten, lengthen, tighten, loosen, take in, let out, punguza:0.6, refusha, rekebisha:0.5
JOB T: job, jobs, hiring, hire me, employ me, vacancy, vacancies, hiring, employment, employ, kazi, internship, attachment, recruit, recruiting, career, careers, cv, apply
SOUND E: speaker, speakers, pa, pa system, sound system, sound equipment, sound, microphone, microphones, mic, mics, mike, mixer, mixers, amplifier, amplifiers, amp, amps, public address, spika, maikrofoni, kipaza sauti, vipaza sauti
GUITAR E: guitar, guitars, gitaa, gita, gitaa, acoustic:0.7, electric:0.6, bass:0.6
KEYBOARD E: keyboard, keyboards, piano, pianos, digital piano, yamaha:0.6, casio:0.6, kinanda
DRUM E: drum, drums, drum set, drumset, drum kit, ngoma
VIOLIN E: violin, violins, cello, saxophone, sax, trumpet, flute, ukulele, harmonica
INSTRUMENT E: instrument, instruments, musical instrument, musical instruments, vyombo, ala
MUSIC W: music, musical, muziki, play:0.5, piga:0.5, kupiga:0.5
ACCESSORY E: earphones, earphone, headphones, headphone, earbuds, airpods, power bank, power banks, powerbank, powerbanks, screen protector, screen protectors, phone cover, phone covers, covers:0.6, cover:0.4, memory card, memory cards, flash disk, flash disks, accessories, accessory, strings, string, picks, pick:0.6, plectrum, capo, capos, strap, straps, cable, cables, tuner, tuners, stand:0.7, stands:0.7, case:0.5, cases:0.5, bag:0.4
LESSON T: lesson, lessons, class, classes, teach, teaching, teacher, teachers, tutor, tutoring, learn, learning, training, train, course, courses, funza, fundisha, somo, masomo, jifunza, tuition, school:0.5, coaching
CONTACT T: phone number, phone, call, calling, simu, contact, contacts, email, e mail, emails, reach you, reach, telephone, tel, mobile number, whatsapp number, namba ya simu, nambari ya simu, customer care, hotline, piga simu, nipigie
GREETING G: hi, hello, hey, hi there, hello there, hey there, habari, habari yako, habari zenu, habari za asubuhi, habari za mchana, habari za jioni, za asubuhi, jambo, hujambo, mambo, mambo vipi, niaje, sasa, sasa hivi:0.2, vipi, sema, hola, good morning, good afternoon, good evening, morning:0.6, afternoon:0.6, evening:0.4, shikamoo, salaam, salam, salamu, greetings, wassup, whatsup, sup, howdy, uko aje, uko poa, uko fiti, hey you, habari gani, karibu:0.4, niaje bro, rada, oya
THANKS K: thanks, thank, thank you, thankyou, asante, asante sana, shukran, shukrani, appreciated, appreciate, helpful, great help, much appreciated, nashukuru, tunashukuru, be blessed, barikiwa, ubarikiwe, mungu akubariki, cheers, nice one, great, awesome, perfect, noted, sawa asante
BOOKING T: book, booking, bookings, booked, appointment, appointments, reserve, reservation, reservations, reserved, slot, slots, schedule:0.7, walk in, walkin, walk ins, walkins, miadi, buk, bukisha, shika nafasi, book a slot, nafasi:0.5, make a booking, secure a slot
RESCHEDULE T: reschedule, rescheduling, cancel, cancellation, cancelling, canceling, cancelled, postpone, postponing, change my appointment, move my appointment, ghairi, sogeza, badilisha:0.6, change:0.5
TABLE E: table, tables, meza, seats, seat:0.7, people:0.3, watu:0.3
BRAIDS E: braid, braids, braiding, box braids, knotless, knotless braids, cornrows, cornrow, plait, plaits, plaiting, suka, kusuka, msuko, twists, rasta, dreadlocks, locs, lines:0.5
HAIR E: stylist:0.5, stylists:0.5, hair, nywele, hairstyle, hairstyles, hairdo, style:0.5, styling:0.5, salon:0.4
HAIRCUT E: haircut, haircuts, hair cut, trim, shave, shaving, nyoa, nyolewa, kinyozi, barber, fade, cut:0.6
CUT E: cut, cutting, kata, katwa, size:0.5, sizes:0.5, measurements:0.5, measurement:0.5
NAILS E: nails, nail, manicure, pedicure, gel, acrylic, acrylics, polish, kucha, mani, pedi, gel polish
WIG E: wig, wigs, weave, weaves, weaving, extensions, extension, hair extensions, attachments, wigi, mawigi, braiding hair
MAKEUP E: makeup, make up, mua, makeup artist, face beat, urembo
BRIDAL T: married, marry, getting married, marriage, oa, olewa, bridal, bride, brides, bridesmaids, wedding:0.7, weddings:0.7, harusi:0.8
HOME E: house calls, home visit, home service, home services, kuja nyumbani, house call, home, house, nyumbani, nyumba, residence, my place
HOMESERVICE T: house calls, house call, home visit, home service, home services, house call, come to my house, come to my home, come to me, kuja nyumbani, mobile service, kuja kwangu
COME W: come, coming, kuja, visit, visiting
KIDS E: daughter, son, daughters, sons, my girl, my boy, binti, mwanangu, kids, kid, children, child, childrens, watoto, mtoto, toddler, toddlers, baby:0.4
MENU T: menu, food, foods, meal, meals, dishes, dish, chakula, vyakula, pika, pikwa, eat, eating, lunch:0.7, dinner:0.7, supper:0.7, serve:0.5, serving:0.5, cuisine, options:0.3
BREAKFAST E: breakfast, kiamsha kinywa, chai ya asubuhi, brunch
COFFEE E: coffee, kahawa, cappuccino, capuccino, latte, espresso, americano, macchiato, mocha, tea:0.6, chai:0.6, cup:0.4
VEGETARIAN T: vegetarian, vegan, veggie, vegetarians, vegans, plant based, bila nyama, no meat, meatless, mboga tu
HALAL T: halal, pork, nguruwe, haram
MEAT E: meat, nyama, chicken, beef, kuku, goat, mbuzi, fish, samaki
WIFI T: wifi, wi fi, internet, password:0.6, hotspot
PARKING T: parking, park, parking space, parking lot, egesha, kuegesha, paking, parking iko
EVENT T: meeting:0.5, meetings:0.5, event, events, party, parties, birthday, birthdays, celebration, celebrations, function, functions, sherehe, host, hosting, private event, gathering, office party
PRESCRIPTION T: prescription, prescriptions, prescribed, script, cheti cha daktari
MEDICINE E: medicine, medicines, medication, medications, drugs, drug, dawa, madawa, tablets, tablet, pills, pill, syrup, panadol, paracetamol, augmentin, amoxil, amoxicillin, antibiotics, antibiotic, insulin, brufen, ibuprofen, piriton, painkiller, painkillers, kikohozi, cough, flu:0.5, malaria:0.6, vitamins, supplements
INSURANCE T: insurance, nhif, sha, shif, aar, jubilee, britam, cic, madison, medical cover, cover:0.6, bima, insured
HEALTHCHECK T: blood pressure, pressure, bp, sugar, blood sugar, sugar levels, diabetes, test:0.6, tests:0.6, testing:0.6, check:0.5, checkup, check up, pima, pimwa, screening
VACCINE T: vaccine, vaccines, vaccination, vaccinations, vaccinate, jab, jabs, shot:0.8, flu shot, immunization, immunisation, chanjo, chanja, chanjwa
BABY E: baby, babies, infant, infants, formula, diapers, diaper, nappies, pampers, huggies, wipes, mtoto:0.5
PHARMACIST T: pharmacist, pharmacists, chemist:0.6, advice, advise, consult, consultation, symptoms, ushauri, shauri
CEMENT E: cement, simiti, saruji, bamburi, simba cement, savannah cement
IRONSHEETS E: iron sheets, iron sheet, mabati, bati, roofing sheets, roofing, gauge
TIMBER E: timber, wood, mbao, plywood, boards, board:0.6, mdf
GLASS E: glass, kioo, vioo, mirror:0.5, window:0.5, windows:0.5
MATERIALS E: building materials, materials, construction:0.7, mawe, stones, sand, mchanga, ballast, kokoto, blocks
PLUMBING E: plumbing, plumber, pipes, pipe, pvc, ppr, fittings, taps, tap, water tank, tank, tanks, sink, sinks, mabomba, bomba, toilet:0.6
PAINT E: paint, paints, painting, rangi, colour, colours, color, colors, crown, basco, emulsion
MIX W: mix, mixing, mixed, changanya, tint, tinting
BULK T: bulk, wholesale, in bulk, supply:0.6, lpo:0.6, tender:0.6, jumla, bei ya jumla, large order, big order, large orders, big orders, quantities, quantity:0.5, many pieces
DISCOUNT T: discount, discounts, loyalty:0.6, regular customer:0.6, offer price, promotion, promotions, promo, deal, deals, punguzo, sale:0.5, reduce:0.6, negotiable, negotiate, bargain, last price, bei ya mwisho, best price, punguza bei, kupunguza bei, bei ya chini, reduce the price, lower the price
SOCIALMEDIA T: website, site:0.5, instagram, facebook, tiktok, twitter, youtube, social media, online:0.5, page:0.5
PLACE W: nairobi, mombasa, kisumu, nakuru, eldoret, thika, juja, ruiru, kitengela, rongai, ngong, karen, westlands, kilimani, kileleshwa, lavington, parklands, kasarani, embakasi, kahawa, githurai, kiambu, machakos, nyeri, meru, kakamega, kisii, naivasha, nanyuki, malindi, kitale, garissa, cbd, town, tao, estate, upcountry:0.5, countrywide:0.5, kenya
PHONE E: phone:0.8, phones, simu:0.8, smartphone, smartphones, handset, handsets, iphone, iphones, android, samsung, tecno, infinix, itel, nokia, oppo, huawei, xiaomi, redmi, vivo, pixel, tablet:0.5, ipad
SCREEN E: screen, screens, display, displays, lcd, touch screen, touchscreen, kioo cha simu, glass:0.4
BATTERY E: battery, batteries, betri, power:0.4, inaisha chaji, chaji inaisha, drains:0.7, draining:0.7
CHARGING E: chaji, chaja, charger, chargers, charging, charging port, charging system, port:0.7, charge:0.5, haichaji, haishiki chaji
WATER E: water, maji, wet, liquid, rain, mvua, splash, toilet:0.7, swimming pool, water damage, ingia maji, iliingia maji
LOCK E: password, passwords, pattern, patterns, pin:0.5, lock, locked, unlock, unlocking, frp, google account, bypass, flash:0.5, flashing:0.5, reset:0.6, sahau, nimesahau, forgot, forget, forgotten
INSPECT T: check, checking, diagnosis, diagnose, diagnostic, angalia, kuangalia, inspect, inspection, assessment, assess, look at:0.6
FREE W: free, bure, free of charge, no charge, bila malipo, complimentary
CAKE E: cake, cakes, keki, cupcake, cupcakes, black forest, red velvet, white forest, fruit cake, sponge:0.6, tier:0.6, tiers:0.6
BREAD E: bread, breads, mkate, mikate, loaf, loaves, buns, bun, scones, scone, brown bread, white bread, baguette
SNACKS E: snack, snacks, mandazi, maandazi, samosa, samosas, sambusa, cookies, cookie, biscuits, biscuit, doughnut, doughnuts, donut, donuts, bites, small chops, pastries, pastry, chapati, chapo, chips:0.5, smokies, sausages, sandwiches, sandwich
BAKE W: bake, baking, baker, bakers, bakery, oka, kuoka, okwa
FLAVOUR E: flavour, flavours, flavor, flavors, ladha, taste, tastes
SPECIALDIET T: sugar free, sugarfree, diabetic, diabetics, gluten free, glutenfree, gluten, eggless, bila mayai, bila sukari, no sugar, no eggs, lactose, dairy free, keto, allergy, allergies, allergic, mayai:0.6, eggs:0.6, egg:0.6
WRITE T: write, writing, written, andika, kuandika, message on, name on, words on, inscription
PHOTO E: photo, photos, picture, pictures, picha, image, images, edible print, edible image, selfie
MEETING E: meeting, meetings, conference, seminar, workshop:0.6, office tea, tea break, training:0.4
WASH T: wash, washes, washing, washed, osha, kuosha, oshwa, clean, cleaning, cleaned, safisha, kusafisha, usafi, shampoo, shampooing, scrub, valet, chafu, dirty, carwash, car wash
CAR E: car:0.6, cars:0.6, gari:0.6, magari:0.6, vehicle:0.6, vehicles:0.6, motor vehicle, saloon, suv, suvs, probox, van, vans, matatu, matatus, pickup:0.5, lorry, truck, prado, vitz, fielder, noah
MOTORBIKE E: motorbike, motorbikes, motorcycle, motorcycles, pikipiki, piki, boda:0.7, bodaboda, boda boda, bike:0.7, bikes:0.7, scooter
ENGINE E: engine, engines, injini, bonnet, under the hood
INTERIOR E: interior, interiors, inside:0.7, ndani:0.6, upholstery, seats:0.6, seat covers, dashboard, deep cleaning, deep clean
POLISH E: wax, waxing, buffing, buff, buffed, shine, shining, detailing, scratches, scratch, polish:0.8, polishing
CARPET E: carpet, carpets, zulia, mazulia, rug, rugs, duvet, duvets, sofa set, curtains, mattress, mattresses
WAIT T: wait, waiting, ngoja, kungoja, ngojea, subiri, kusubiri, lounge, waiting area, waiting room, sit:0.5
DURATION T: how early, in advance, advance:0.6, days before, how long, how many minutes, how many hours, how many days, muda, muda gani, chukua muda gani, itachukua, takes:0.7, take long, duration, minutes:0.6, dakika:0.6, same day:0.6, ready:0.5, quickly:0.6, fast:0.5, express:0.7, urgent:0.7, haraka:0.6, baada ya muda, siku ngapi, wiki ngapi, weeks ngapi, days ngapi, masaa ngapi, dakika ngapi, miezi ngapi, months ngapi, how many weeks, how many months, chukua siku, inachukua:0.6, huchukua:0.6, itachukua siku, takes how long, how soon, by when
PARCEL E: parcel, parcels, package, packages, packet, mzigo, mizigo, luggage, kifurushi, vifurushi, item:0.5, items:0.5, goods:0.6, documents:0.5
COVERAGE T: areas, area, cover:0.6, coverage, reach:0.6, fika, mnafika, routes, route, zones, zone, go to:0.4, serve:0.4, operate in
PICKUP T: pick:0.6, pick up, pickup, picks:0.4, collect, collection, collecting, fetch, come for, kuja kuchukua
TRACK T: track, tracking, trace, tracing, fuatilia, live location, where is my, tracking number
LOST T: lost, lose, loses, losing, missing, potea, imepotea, kupotea, stolen, compensation, compensate, fidia, claim, claims
RULES T: allowed, allow, not allowed, prohibited, banned, restricted, illegal, ruhusiwa, ruhusa, marufuku, forbidden
ALCOHOL E: alcohol, pombe, beer, beers, wine, liquor, spirits, whisky
FURNITURE E: fridge, fridges, friji, furniture, sofa, sofas, bed, beds, kitanda, vitanda, wardrobe, tv, tvs, television, big items, heavy, heavy items, mattress
MOVE T: move, moving, house move, house moving, shift, shifting, hamia, kuhamia, kuhama, hama, relocate, relocation, movers
BUSINESSACCT T: business account, corporate account, monthly account, monthly invoice, corporate, companies, company, biashara, business:0.6, businesses:0.6, invoice, invoices
COD T: cash on delivery, pay on delivery, collect cash, collect money, collect payment, cod, lipa ukifika, online seller, online sellers, online shop, sell online:0.8
SCHOOL E: school, schools, shule, academy, primary:0.7, secondary:0.7, high school, kindergarten, form one:0.6, class:0.3, grade:0.4
UNIFORM E: uniform, uniforms, sare, sare ya shule, school uniform
SWEATER E: sweater, sweaters, sweta, jumper, jumpers, pullover, cardigan, cardigans
CLOTHES E: shirt, shirts, shati, trousers, trouser, suruali, skirt, skirts, sketi, shorts, socks, soksi, dress, dresses, blouse, tie, ties, blazer, blazers, tracksuit, tracksuits, clothes, nguo, mavazi, t shirt, tshirt, tshirts
SHOES E: shoes, shoe, viatu, kiatu, sneakers, sandals, boots, toughees, bata:0.6, school shoes, gumboots, rubbers
SIZE E: size, sizes, saizi, fit, fitting:0.6, fits, measure, measurements, measurement, too small, too big, tight, loose:0.6, haifit, inafit
SEW T: sew, sewing, shona, kushona, tailor, tailors, tailoring, tailored, stitch, stitching, fundi wa nguo, custom made, made to measure
EMBROIDERY E: embroidery, embroider, embroidered, badge, badges, name tag, name tags, name labels, labels, label, logo:0.6
SUPPLY T: supply, supplies, supplier, suppliers, supplying, lpo, lpos, tender, tenders, institutions, institution, hotels:0.6, restaurants:0.6, schools:0.3
GAS E: gas, gesi, lpg, cooking gas, kgas, k gas, progas, afrigas, hashi, total gas
CYLINDER E: cylinder, cylinders, mtungi, mitungi, meko, 6kg:0.5, 13kg:0.5, 50kg:0.5
REFILL T: refill, refills, refilling, refil, jaza, kujaza, jazwa, top up, topup, recharge:0.5
LEAK T: leak, leaks, leaking, leakage, vuja, inavuja, kuvuja, smell, smells, smelling, harufu, gas smell
INSTALL T: install, instal, instals, installation, installing, installed, connect:0.7, connection:0.7, connecting:0.7, set up, setup, fitting:0.5, fix it up:0.5, piping, weka:0.3, fungia:0.8, fungiwa:0.8, kufungia:0.8
COOKER E: cooker, cookers, jiko, majiko, burner, burners, stove, stoves, oven:0.6, grill, grills, hob
WEIGHT T: weigh, weight, weighed, weighing, uzito, scale, full weight, underweight, short weight, pima uzito, full:0.5, imejaa, kidogo:0.4, imeisha:0.5
NEW W: new, mpya, brand new
BRAND E: brand, brands, make:0.3, model:0.6, models, type:0.3, aina, chapa
LOYALTY T: loyalty, loyalty card, loyalty points, points:0.6, regular customer, regular customers, frequent, reward, rewards, free wash:0.7, every 10th
GIFTCARD T: gift card, gift cards, gift voucher, voucher, vouchers, giftcard
OWNER T: owner, owns, founder, ceo, mwenye duka, mwenyewe
"#;

/// A concept id and how strongly a word signals it (0..=1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub concept: u16,
    pub strength: f32,
}

/// A multi-word phrase starting with a given word.
pub(crate) struct Phrase {
    pub rest: Vec<String>,
    pub hits: Vec<Hit>,
}

/// The parsed, process-wide lexicon.
pub(crate) struct Lexicon {
    pub names: Vec<&'static str>,
    pub classes: Vec<Class>,
    words: HashMap<String, Vec<Hit>>,
    /// Single words by their stem, so "charged" and "reserving" find "charge" and "reserve".
    stems: HashMap<String, Vec<Hit>>,
    phrases: HashMap<String, Vec<Phrase>>,
    /// Single words of the lexicon, for typo correction.
    pub fuzzy: DeleteIndex,
    /// Concepts the matcher's rules name: delivery, a place, a price, paying, a greeting.
    pub deliver: u16,
    pub place: u16,
    pub price: u16,
    pub pay: u16,
    pub greeting: u16,
    /// Concepts a customer asks to be sent rather than asks to have delivered: payment details,
    /// contacts, the location.
    pub info: Vec<u16>,
}

static LEXICON: OnceLock<Lexicon> = OnceLock::new();

/// The process-wide lexicon, parsed on first use.
pub(crate) fn lexicon() -> &'static Lexicon {
    LEXICON.get_or_init(Lexicon::parse)
}

impl Lexicon {
    fn parse() -> Lexicon {
        let mut names = Vec::new();
        let mut classes = Vec::new();
        let mut words: HashMap<String, Vec<Hit>> = HashMap::new();
        let mut phrases: HashMap<String, Vec<Phrase>> = HashMap::new();
        for line in TABLE.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (head, body) = line.split_once(':').expect("lexicon line has a colon");
            let mut head = head.split_whitespace();
            let name = head.next().expect("concept name");
            let class = match head.next().expect("concept class") {
                "T" => Class::Topic,
                "E" => Class::Entity,
                "W" => Class::Weak,
                "G" => Class::Greeting,
                "K" => Class::Thanks,
                other => panic!("unknown lexicon class {other}"),
            };
            let concept = names.len() as u16;
            names.push(name);
            classes.push(class);
            for item in body.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (text, strength) = match item.rsplit_once(':') {
                    Some((t, s)) => (t, s.parse::<f32>().expect("strength")),
                    None => (item, 1.0),
                };
                let hit = Hit { concept, strength };
                let mut parts = text.split_whitespace();
                let first = parts.next().expect("word").to_string();
                let rest: Vec<String> = parts.map(str::to_string).collect();
                if rest.is_empty() {
                    push_hit(words.entry(first).or_default(), hit);
                } else {
                    let list = phrases.entry(first).or_default();
                    match list.iter_mut().find(|p| p.rest == rest) {
                        Some(p) => push_hit(&mut p.hits, hit),
                        None => list.push(Phrase {
                            rest,
                            hits: vec![hit],
                        }),
                    }
                }
            }
        }
        for list in phrases.values_mut() {
            // Longest phrase first, so "lipa na mpesa" wins over "lipa".
            list.sort_by_key(|p| std::cmp::Reverse(p.rest.len()));
        }
        let mut stems: HashMap<String, Vec<Hit>> = HashMap::new();
        for (w, hits) in &words {
            let st = stem(w);
            // Plurals stay out: "takes" says duration, "take" does not.
            if st.len() >= 4 && st.as_ref() != w.as_str() && !w.ends_with('s') {
                let list = stems.entry(st.into_owned()).or_default();
                for &h in hits {
                    push_hit(list, h);
                }
            }
        }
        let phrase_words = phrases.iter().flat_map(|(first, ps)| {
            std::iter::once(first.clone()).chain(ps.iter().flat_map(|p| p.rest.iter().cloned()))
        });
        let fuzzy = DeleteIndex::build(
            words
                .keys()
                .cloned()
                .chain(phrase_words)
                .filter(|w| w.len() >= 4 && !is_stopword(w)),
        );
        let id = |n: &str| names.iter().position(|x| *x == n).expect("concept") as u16;
        let (deliver, place, greeting) = (id("DELIVER"), id("PLACE"), id("GREETING"));
        let (price, pay) = (id("PRICE"), id("PAY"));
        let info = (0..names.len())
            .filter(|&i| matches!(names[i], "PAY" | "CONTACT" | "LOCATION"))
            .map(|i| i as u16)
            .collect();
        Lexicon {
            info,
            deliver,
            place,
            price,
            pay,
            greeting,
            names,
            classes,
            words,
            stems,
            phrases,
            fuzzy,
        }
    }

    /// Concept hits of a single word: as written, stemmed, or with Swahili verb prefixes removed.
    /// Also returns the root the hits were found on, used as the word's term.
    pub(crate) fn word_hits<'w>(&self, w: &'w str) -> Option<(&[Hit], std::borrow::Cow<'w, str>)> {
        if let Some(h) = self.words.get(w) {
            return Some((h, std::borrow::Cow::Borrowed(w)));
        }
        let s = stem(w);
        if let Some(h) = self.words.get(s.as_ref()) {
            return Some((h, s));
        }
        if let Some(h) = self.stems.get(s.as_ref()) {
            return Some((h, s));
        }
        if let Some(base) = w.strip_suffix('s').filter(|b| b.len() >= 3) {
            if let Some(h) = self.words.get(base) {
                return Some((h, std::borrow::Cow::Borrowed(base)));
            }
        }
        if let Some(found) = self.swahili_verb(w) {
            return Some(found);
        }
        // Subjunctive "-e": "nikutumie", "niletee" are "tumia", "letea".
        if w.len() >= 5 && w.ends_with('e') && w.is_ascii() {
            let mut a = String::with_capacity(w.len());
            a.push_str(&w[..w.len() - 1]);
            a.push('a');
            if let Some((h, root)) = self.swahili_verb(&a) {
                return Some((h, std::borrow::Cow::Owned(root.into_owned())));
            }
        }
        // Other Swahili forms: locative and plural "-ni" (asanteni), relative "-yo",
        // passive and applicative extensions, tense and negation markers.
        if w.len() >= 5 && w.is_ascii() {
            let mut found: Option<(&[Hit], String)> = None;
            super::glossary::for_each_root(w, |r| {
                if let Some(h) = self.words.get(r) {
                    found = Some((h, r.to_owned()));
                }
                found.is_some()
            });
            if let Some((h, r)) = found {
                return Some((h, std::borrow::Cow::Owned(r)));
            }
        }
        // Habitual "-nga" (Sheng and coast): "mnafunguanga" is "mnafungua".
        if w.len() >= 7 && w.ends_with("anga") {
            let base = &w[..w.len() - 3];
            if let Some(h) = self.words.get(base) {
                return Some((h, std::borrow::Cow::Borrowed(base)));
            }
            return self.swahili_verb(base);
        }
        None
    }

    /// Hits of a Swahili verb form: subject, tense, negative and object prefixes removed.
    fn swahili_verb<'w>(&self, w: &'w str) -> Option<(&[Hit], std::borrow::Cow<'w, str>)> {
        if w.len() >= 5 && w.is_ascii() {
            for p in SW_PREFIXES {
                if let Some(rest) = w.strip_prefix(p) {
                    if rest.len() < 3 {
                        continue;
                    }
                    if let Some(h) = self.words.get(rest) {
                        return Some((h, std::borrow::Cow::Borrowed(rest)));
                    }
                    // Object marker after the subject/tense prefix: "ku-ni-tumia", "m-ki-nunua".
                    for o in [
                        "ni", "ku", "tu", "wa", "m", "ki", "vi", "zi", "li", "i", "u",
                    ] {
                        if let Some(r2) = rest.strip_prefix(o) {
                            if r2.len() >= 4 {
                                if let Some(h) = self.words.get(r2) {
                                    return Some((h, std::borrow::Cow::Borrowed(r2)));
                                }
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// The longest lexicon phrase starting at `toks[i]`, with the number of tokens it covers.
    pub(crate) fn phrase_at(&self, toks: &[&str], i: usize) -> Option<(&[Hit], usize)> {
        let list = self.phrases.get(toks[i])?;
        for p in list {
            let n = p.rest.len();
            if i + n < toks.len() && p.rest.iter().zip(&toks[i + 1..=i + n]).all(|(a, b)| a == b) {
                return Some((&p.hits, n + 1));
            }
        }
        None
    }

    /// Whether the lexicon knows the word as written or through an English ending, without
    /// reading it as a Swahili form: "meza" is a table, not "m-eza".
    pub(crate) fn knows_as_written(&self, w: &str) -> bool {
        let s = stem(w);
        self.words.contains_key(w)
            || self.words.contains_key(s.as_ref())
            || self.stems.contains_key(s.as_ref())
    }

    /// Whether a word is known to the lexicon in any form.
    pub(crate) fn knows(&self, w: &str) -> bool {
        self.word_hits(w).is_some() || self.phrases.contains_key(w)
    }

    /// Whether two words signal the same concepts, so a typo between them is no ambiguity.
    pub(crate) fn same_meaning(&self, a: &str, b: &str) -> bool {
        let ca = self
            .words
            .get(a)
            .map(|h| h.iter().map(|h| h.concept).collect::<Vec<_>>());
        let cb = self
            .words
            .get(b)
            .map(|h| h.iter().map(|h| h.concept).collect::<Vec<_>>());
        ca.is_some() && ca == cb
    }

    pub(crate) fn concept_count(&self) -> usize {
        self.names.len()
    }
}

fn push_hit(list: &mut Vec<Hit>, hit: Hit) {
    match list.iter_mut().find(|h| h.concept == hit.concept) {
        Some(h) => h.strength = h.strength.max(hit.strength),
        None => list.push(hit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts(w: &str) -> Vec<&'static str> {
        let l = lexicon();
        l.word_hits(w)
            .map(|(h, _)| h.iter().map(|h| l.names[h.concept as usize]).collect())
            .unwrap_or_default()
    }

    #[test]
    fn swahili_verbs_reach_their_concept_through_prefixes() {
        assert_eq!(concepts("mnafungua"), ["HOURS"]);
        assert_eq!(concepts("mnatengeneza"), ["REPAIR"]);
        assert_eq!(concepts("mnadeliver"), ["DELIVER"]);
        assert_eq!(concepts("kunitumia"), ["DELIVER"]);
        assert_eq!(concepts("nikutumie"), ["DELIVER"]);
        assert_eq!(concepts("mnafunguanga"), ["HOURS"]);
        assert_eq!(concepts("haichaji"), ["CHARGING"]);
    }

    #[test]
    fn english_plurals_reach_their_concept() {
        assert_eq!(concepts("guitars"), ["GUITAR"]);
    }
}
