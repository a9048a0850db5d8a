// Remote support, the counsellor's side: follow the session's state, make the WebRTC offer
// once the client has accepted on the tablet, show the screen, chat, point, hang up.
// The server only relays signals (HTTP here, MQTT to the tablet); media flows peer to peer.
"use strict";

(() => {
  const root = document.getElementById("support");
  if (!root) return;
  const d = root.dataset;
  const reasons = JSON.parse(d.reasons || "{}");
  const $ = (id) => document.getElementById(id);
  const status = $("support-status");
  const video = $("support-video");
  const audio = $("support-audio");
  const chatLog = $("chat-log");
  const chatText = $("chat-text");
  const chatSend = $("chat-send");
  const muteButton = $("mute");
  const tapToggle = $("tap-toggle");
  const format = (template, values) =>
    template.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? String(values[key]) : ""));

  const HEARTBEAT_MS = 1000;
  const HEARTBEAT_LOST_MS = 5000;
  const POLL_MS = 700;

  let pc = null;
  let channel = null;
  let microphone = null;
  let offerPosted = false;
  let answered = false;
  let finished = false;
  let lastHeard = 0;
  let heartbeat = null;
  let poller = null;
  let control = false;

  const say = (text) => {
    if (status.textContent !== text) status.textContent = text;
  };

  const addChat = (who, text) => {
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = `${who}: `;
    item.append(name, document.createTextNode(text));
    chatLog.append(item);
    chatLog.scrollTop = chatLog.scrollHeight;
  };

  const send = (message) => {
    if (channel && channel.readyState === "open") channel.send(JSON.stringify(message));
  };

  const post = (url, body) => window.Lainaamo.send(url, body || {});

  function finish(text) {
    if (finished) return;
    finished = true;
    say(text);
    clearInterval(heartbeat);
    clearInterval(poller);
    send({ t: "bye" });
    if (pc) pc.close();
    if (microphone) microphone.getTracks().forEach((t) => t.stop());
    chatText.disabled = chatSend.disabled = muteButton.disabled = true;
    $("hangup").disabled = true;
  }

  function onChannelMessage(event) {
    lastHeard = Date.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return; // malformed: ignored, as the protocol says
    }
    if (!message || typeof message !== "object") return;
    if (message.t === "chat" && typeof message.text === "string") addChat(d.msgClient, message.text);
    else if (message.t === "bye") hangUp(false);
  }

  function openChannel() {
    channel = pc.createDataChannel("support");
    channel.addEventListener("open", () => {
      lastHeard = Date.now();
      chatText.disabled = chatSend.disabled = false;
      heartbeat = setInterval(() => {
        send({ t: "ping", at: Date.now() });
        if (Date.now() - lastHeard > HEARTBEAT_LOST_MS) hangUp(true, "heartbeat_lost");
      }, HEARTBEAT_MS);
    });
    channel.addEventListener("message", onChannelMessage);
  }

  async function waitForGathering(timeoutMs) {
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs); // then candidates trickle to the tablet instead
    });
  }

  // The connection type (host, srflx, relay) of the candidate pair in use, for the page and
  // for IT support diagnosing a tablet behind a difficult network.
  async function connectionType() {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((report) => {
      if (report.type === "transport" && report.selectedCandidatePairId) {
        pair = stats.get(report.selectedCandidatePairId);
      }
    });
    if (!pair) {
      stats.forEach((report) => {
        if (report.type === "candidate-pair" && report.state === "succeeded" && report.nominated) {
          pair = report;
        }
      });
    }
    const local = pair && stats.get(pair.localCandidateId);
    return local ? local.candidateType : "";
  }

  async function start(state) {
    // ?relay=1 forces the TURN relay: a way to check that TURN works for this tablet.
    const relayOnly = new URLSearchParams(window.location.search).get("relay") === "1";
    pc = new RTCPeerConnection({
      iceServers: state.ice_servers || [],
      iceTransportPolicy: relayOnly ? "relay" : "all",
    });
    pc.addTransceiver("video", { direction: "recvonly" });
    try {
      microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      microphone.getAudioTracks().forEach((track) => pc.addTrack(track, microphone));
      muteButton.disabled = false;
    } catch (error) {
      pc.addTransceiver("audio", { direction: "recvonly" });
      addChat("Lainaamo", d.msgNoMic);
    }
    openChannel();
    pc.addEventListener("track", (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      if (event.track.kind === "video") video.srcObject = stream;
      else audio.srcObject = stream;
    });
    pc.addEventListener("icecandidate", (event) => {
      // Candidates found after the offer went out trickle to the tablet; the ones before
      // are inside the offer's SDP already.
      if (!offerPosted) return;
      const c = event.candidate;
      post(d.candidateUrl, {
        candidate: c ? c.candidate : "",
        sdp_mid: c ? c.sdpMid : null,
        sdp_mline_index: c ? c.sdpMLineIndex : null,
      }).catch(() => {});
    });
    pc.addEventListener("connectionstatechange", async () => {
      if (pc.connectionState === "connected") {
        say(d.msgActive);
        const type = await connectionType().catch(() => "");
        if (type) {
          // The candidate type (host, srflx, prflx, relay) stays in the data for diagnosis;
          // the page says it in plain words.
          root.dataset.connectionType = type;
          $("support-connection").textContent = type === "relay" ? d.msgRelay : d.msgDirect;
        }
      }
      if (pc.connectionState === "failed") hangUp(true, "connection_failed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(3000);
    await post(d.offerUrl, { sdp: pc.localDescription.sdp });
    offerPosted = true;
    say(d.msgConnecting);
  }

  async function hangUp(tellServer, reason) {
    if (finished) return;
    const text = format(d.msgEnded, { reason: reasons[reason || "hangup_counsellor"] || reason || "" });
    finish(text);
    if (tellServer) {
      try {
        await post(d.hangupUrl, { reason: reason || "hangup_counsellor" });
      } catch (error) {
        /* the server ends it anyway when the tablet reports */
      }
    }
  }

  async function poll() {
    if (finished) return;
    let state;
    try {
      const response = await fetch(d.stateUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      state = await response.json();
    } catch (error) {
      return;
    }
    control = Boolean(state.control);
    $("tap-toggle-label").hidden = !control;
    switch (state.state) {
      case "requested":
      case "waiting_consent": {
        const left = state.consent_deadline
          ? Math.max(0, Math.round((Date.parse(state.consent_deadline) - Date.now()) / 1000))
          : "";
        say(format(d.msgWaiting, { seconds: left }));
        break;
      }
      case "accepted":
        if (!pc) {
          say(d.msgAccepted);
          start(state).catch((error) => finish(format(d.msgEnded, { reason: error.message })));
        }
        break;
      case "declined":
        finish(d.msgDeclined);
        break;
      case "consent_timeout":
        finish(d.msgTimeout);
        break;
      case "ended":
        finish(format(d.msgEnded, { reason: reasons[state.end_reason] || state.end_reason || "" }));
        break;
      default:
        break;
    }
    if (pc && state.answer_sdp && !answered) {
      answered = true;
      await pc.setRemoteDescription({ type: "answer", sdp: state.answer_sdp });
    }
  }

  // Pointing (and, with the client's second consent, tapping) at the client's screen.
  video.addEventListener("click", (event) => {
    const box = video.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width;
    const y = (event.clientY - box.top) / box.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return;
    if (control && tapToggle.checked) send({ t: "input", kind: "tap", x, y });
    else send({ t: "pointer", x, y });
  });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = chatText.value.trim().slice(0, 1000);
    if (!text) return;
    send({ t: "chat", text });
    addChat(d.msgYou, text);
    chatText.value = "";
  });

  muteButton.addEventListener("click", () => {
    if (!microphone) return;
    const muted = muteButton.getAttribute("aria-pressed") !== "true";
    microphone.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.textContent = muted ? d.msgUnmute : d.msgMute;
  });

  $("hangup").addEventListener("click", () => hangUp(true, "hangup_counsellor"));
  // Leaving the page hangs up: the tablet hears "bye" at once rather than by heartbeat, and
  // the server ends the session (a beacon outlives the page; the CSRF token goes in its form
  // body, since a beacon sends no headers), so that a new session can start at once.
  window.addEventListener("pagehide", () => {
    if (finished) return;
    send({ t: "bye" });
    const body = new FormData();
    body.append("csrf_token", window.Lainaamo.csrf());
    body.append("reason", "hangup_counsellor");
    navigator.sendBeacon(d.hangupUrl, body);
  });

  poll();
  poller = setInterval(poll, POLL_MS);
})();
