"""What the kiosk itself says, in Finnish, Swedish and English.

Neutral wording only: no text names the service, the unit or why the device was lent, because
on a lost or borrowed tablet that alone can reveal health data (docs/protocol.md §9.1).
"""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["fi", "sv", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)

TEXTS: dict[str, dict[str, str]] = {
    "launcher_title": {"fi": "Aloitus", "sv": "Start", "en": "Home"},
    "no_shortcuts": {
        "fi": "Tällä laitteella ei ole vielä pikakuvakkeita.",
        "sv": "Den här enheten har inga genvägar ännu.",
        "en": "This device has no shortcuts yet.",
    },
    "locked_title": {
        "fi": "Laite on lukittu",
        "sv": "Enheten är låst",
        "en": "This device is locked",
    },
    "lost_title": {
        "fi": "Tämä laite on kadonnut",
        "sv": "Den här enheten har kommit bort",
        "en": "This device has been lost",
    },
    "lost_default": {
        "fi": "Jos löysit laitteen, soita alla olevaan numeroon.",
        "sv": "Om du har hittat enheten, ring numret nedan.",
        "en": "If you found this device, please call the number below.",
    },
    "phone": {"fi": "Puhelin", "sv": "Telefon", "en": "Phone"},
    "ok": {"fi": "Selvä", "sv": "OK", "en": "OK"},
    "message_title": {"fi": "Viesti", "sv": "Meddelande", "en": "Message"},
    "consent_title": {
        "fi": "Etätukipyyntö",
        "sv": "Begäran om distansstöd",
        "en": "Remote support request",
    },
    "consent_view": {
        "fi": "{caller} pyytää saada nähdä näyttösi.",
        "sv": "{caller} ber om att få se din skärm.",
        "en": "{caller} asks to see your screen.",
    },
    "consent_control": {
        "fi": "{caller} pyytää saada nähdä näyttösi ja ohjata sitä.",
        "sv": "{caller} ber om att få se och styra din skärm.",
        "en": "{caller} asks to see and control your screen.",
    },
    # Why, when the professional gave no reason (never an empty line or a dash).
    "consent_no_purpose": {
        "fi": "Ohjaajasi haluaisi auttaa sinua tabletin käytössä.",
        "sv": "Din handledare vill hjälpa dig med surfplattan.",
        "en": "Your counsellor would like to help you with the tablet.",
    },
    "allow": {"fi": "Salli", "sv": "Tillåt", "en": "Allow"},
    "deny": {"fi": "Älä salli", "sv": "Tillåt inte", "en": "Don't allow"},
    "sharing": {
        "fi": "Näyttösi näkyy: {caller}",
        "sv": "Din skärm visas för: {caller}",
        "en": "Your screen is shared with {caller}",
    },
    "end": {"fi": "Lopeta", "sv": "Avsluta", "en": "End"},
    "send": {"fi": "Lähetä", "sv": "Skicka", "en": "Send"},
    "home": {"fi": "Aloitus", "sv": "Start", "en": "Home"},
    # --- remote groups (launcher.py): never a title, only when (docs/protocol.md §9.7)
    "group_at": {"fi": "Ryhmä klo {time}", "sv": "Grupp kl. {time}", "en": "Group at {time}"},
    "group_tomorrow": {
        "fi": "Ryhmä huomenna klo {time}",
        "sv": "Grupp i morgon kl. {time}",
        "en": "Group tomorrow at {time}",
    },
    "join_group": {"fi": "Liity ryhmään", "sv": "Gå med i gruppen", "en": "Join the group"},
    "group_not_open": {
        "fi": "Ryhmä ei ole nyt avoinna. Palaa aloitussivulle.",
        "sv": "Gruppen är inte öppen nu. Gå tillbaka till startsidan.",
        "en": "The group is not open now. Go back to the home page.",
    },
    # --- settings (launcher.py, settings.py)
    "settings": {"fi": "Asetukset", "sv": "Inställningar", "en": "Settings"},
    "volume": {"fi": "Äänenvoimakkuus", "sv": "Volym", "en": "Volume"},
    "volume_level": {
        "fi": "Äänenvoimakkuus {level} %",
        "sv": "Volym {level} %",
        "en": "Volume {level}%",
    },
    "volume_muted": {
        "fi": "Ääni on mykistetty (äänenvoimakkuus {level} %)",
        "sv": "Ljudet är avstängt (volym {level} %)",
        "en": "Sound is muted (volume {level}%)",
    },
    "louder": {"fi": "Kovemmalle", "sv": "Högre", "en": "Louder"},
    "quieter": {"fi": "Hiljemmalle", "sv": "Lägre", "en": "Quieter"},
    "mute": {"fi": "Mykistä", "sv": "Stäng av ljudet", "en": "Mute"},
    "unmute": {"fi": "Palauta ääni", "sv": "Slå på ljudet", "en": "Unmute"},
    "no_sound": {
        "fi": "Äänenvoimakkuutta ei voi nyt säätää: laitteen äänipalvelu ei vastaa.",
        "sv": "Volymen kan inte ändras nu: enhetens ljudtjänst svarar inte.",
        "en": "The volume cannot be changed now: the device's sound service does not answer.",
    },
    "brightness": {"fi": "Näytön kirkkaus", "sv": "Skärmens ljusstyrka", "en": "Brightness"},
    "brightness_level": {
        "fi": "Kirkkaus {level} %",
        "sv": "Ljusstyrka {level} %",
        "en": "Brightness {level}%",
    },
    "brighter": {"fi": "Kirkkaammaksi", "sv": "Ljusare", "en": "Brighter"},
    "dimmer": {"fi": "Himmeämmäksi", "sv": "Mörkare", "en": "Dimmer"},
    "no_backlight": {
        "fi": "Tämän näytön kirkkautta ei voi säätää täältä.",
        "sv": "Den här skärmens ljusstyrka kan inte ändras här.",
        "en": "This screen's brightness cannot be changed here.",
    },
    "wifi": {"fi": "Wi-Fi-verkko", "sv": "Wi-Fi-nätverk", "en": "Wi-Fi network"},
    "no_network_manager": {
        "fi": "Wi-Fi-verkkoa ei voi vaihtaa tällä laitteella: "
        "verkkopalvelu (NetworkManager) ei ole käynnissä.",
        "sv": "Wi-Fi-nätverket kan inte bytas på den här enheten: "
        "nätverkstjänsten (NetworkManager) körs inte.",
        "en": "The Wi-Fi network cannot be changed on this device: "
        "its network service (NetworkManager) is not running.",
    },
    "no_networks": {
        "fi": "Yhtään verkkoa ei löytynyt.",
        "sv": "Inga nätverk hittades.",
        "en": "No networks were found.",
    },
    "choose_network": {"fi": "Valitse verkko", "sv": "Välj nätverk", "en": "Choose a network"},
    "network_open": {"fi": "avoin", "sv": "öppet", "en": "open"},
    "network_secured": {"fi": "suojattu", "sv": "skyddat", "en": "protected"},
    "network_in_use": {"fi": "yhdistetty", "sv": "anslutet", "en": "connected"},
    "signal": {"fi": "signaali {level} %", "sv": "signal {level} %", "en": "signal {level}%"},
    "password": {"fi": "Salasana", "sv": "Lösenord", "en": "Password"},
    "password_hint": {
        "fi": "Salasana tarvitaan vain suojattuun verkkoon.",
        "sv": "Lösenord behövs bara för ett skyddat nätverk.",
        "en": "A password is needed only for a protected network.",
    },
    "connect": {"fi": "Yhdistä", "sv": "Anslut", "en": "Connect"},
    "connected": {
        "fi": "Yhdistetty verkkoon {ssid}.",
        "sv": "Ansluten till {ssid}.",
        "en": "Connected to {ssid}.",
    },
    "connect_failed": {
        "fi": "Verkkoon {ssid} ei saatu yhteyttä. Tarkista salasana ja yritä uudelleen.",
        "sv": "Det gick inte att ansluta till {ssid}. Kontrollera lösenordet och försök igen.",
        "en": "Could not connect to {ssid}. Check the password and try again.",
    },
    "bad_network": {
        "fi": "Valitse verkko luettelosta.",
        "sv": "Välj ett nätverk i listan.",
        "en": "Choose a network from the list.",
    },
    "bad_password": {
        "fi": "Salasanassa on oltava 8–63 merkkiä: kirjaimia a–z, numeroita tai välimerkkejä.",
        "sv": "Lösenordet ska ha 8–63 tecken: bokstäver a–z, siffror eller skiljetecken.",
        "en": "The password must have 8 to 63 characters: letters a–z, digits or punctuation.",
    },
    "password_not_needed": {
        "fi": "Verkko {ssid} on avoin: jätä salasana tyhjäksi.",
        "sv": "Nätverket {ssid} är öppet: lämna lösenordet tomt.",
        "en": "The network {ssid} is open: leave the password empty.",
    },
    "wifi_unsupported": {
        "fi": "Verkkoon {ssid} tarvitaan kirjautuminen, jota tässä ei voi tehdä.",
        "sv": "Nätverket {ssid} kräver en inloggning som inte kan göras här.",
        "en": "The network {ssid} needs a sign-in that cannot be done here.",
    },
    "not_allowed": {
        "fi": "Tämä asetus ei ole käytettävissä.",
        "sv": "Den här inställningen är inte tillgänglig.",
        "en": "This setting is not available.",
    },
    "not_changed": {
        "fi": "Asetusta ei voitu muuttaa. Yritä uudelleen.",
        "sv": "Inställningen kunde inte ändras. Försök igen.",
        "en": "The setting could not be changed. Please try again.",
    },
    "refused": {
        "fi": "Pyyntö hylättiin. Palaa asetuksiin ja yritä uudelleen.",
        "sv": "Begäran avvisades. Gå tillbaka till inställningarna och försök igen.",
        "en": "The request was refused. Go back to the settings and try again.",
    },
}


def text(key: str, language: str, **fields: str) -> str:
    """The text `key` in `language` (English when the language is not one of ours)."""
    by_language = TEXTS[key]
    template = by_language.get(language, by_language["en"])
    return template.format(**fields) if fields else template


def clock_time(hour: int, minute: int, language: str) -> str:
    """A time of day as the language writes it: 14.00 in Finnish and Swedish, 14:00 in English."""
    separator = ":" if language == "en" else "."
    return f"{hour:02d}{separator}{minute:02d}"


def consent_purpose(purpose: str | None, language: str) -> str:
    """Why a remote-support request asks, as the consent dialog shows it: the professional's
    words in quotes, or a neutral sentence when they gave none."""
    why = (purpose or "").strip()
    return f"“{why}”" if why else text("consent_no_purpose", language)
