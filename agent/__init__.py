"""The Lainaamo device agent: the reference implementation of MQTT contract v1.

Layers, from the inside out:

- `core`      sans-I/O agent logic: builds messages, handles incoming ones, decides when to report
- `policy`    the desired policy, read and checked: modes, kiosk profile, lock screen, banner
- `enforcer`  sans-I/O: keeps the platform in line with the policy; the offline self-lock
- `state`     what survives a restart: boot counter, applied desired state, seen command ids,
              last server contact and the self-lock
- `usage`     sans-I/O: the daily usage totals (screen-on and support seconds, launches per
              category), counted on the device while the policy asks for them
- `outbox`    on-disk queue of reports and acks, emptied only by the broker's PUBACK
- `platform`  what the agent manages: a real Linux machine or a simulated tablet
- `link`      one paho client driven from outside: connect, will, birth, subscribe, backoff
- `loop`      a selector loop that drives many links in one thread
- `runner` / `simulator`  entry points for `lainaamo agent` and `lainaamo simulate`

See docs/protocol.md for the contract itself.
"""
