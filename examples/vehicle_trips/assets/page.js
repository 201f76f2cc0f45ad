// The vehicle_trips page: a WebSocket (/ws) pushes the fleet and the trip-state table; this
// redraws the vehicles, their routes and the trips table from each message, and posts the
// forms to the JSON API. Plain JavaScript, no library, nothing loaded from elsewhere.
(function () {
  "use strict";
  var svg = document.getElementById("map");
  var proj = svg.getAttribute("data-projection").split(",").map(Number);
  var minLat = proj[0], maxLat = proj[1], minLng = proj[2], maxLng = proj[3], height = proj[4];
  var W = 1000;
  function xy(lat, lng) {
    return [((lng - minLng) / (maxLng - minLng)) * W, ((maxLat - lat) / (maxLat - minLat)) * height];
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function clock(ms) {
    var s = Math.floor((((ms % 86400000) + 86400000) % 86400000) / 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(Math.floor(s / 3600)) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60);
  }
  var placeNames = {};
  Array.prototype.forEach.call(document.querySelectorAll("#trip-destination option"), function (o) {
    placeNames[o.value] = o.textContent;
  });

  function drawVehicles(vehicles) {
    var routes = "", marks = "";
    vehicles.forEach(function (v) {
      if (v.route && v.route.length) {
        routes += '<polyline class="route" data-route="' + esc(v.trip_id || "") + '" points="' +
          v.route.map(function (p) { var q = xy(p[0], p[1]); return q[0].toFixed(1) + "," + q[1].toFixed(1); }).join(" ") + '"/>';
      }
      var q = xy(v.lat, v.lng);
      marks += '<g class="vehicle' + (v.trip_id ? " driving" : "") + '" data-vehicle="' + esc(v.id) +
        '" data-lat="' + v.lat.toFixed(6) + '" data-lng="' + v.lng.toFixed(6) +
        '" transform="translate(' + q[0].toFixed(1) + "," + q[1].toFixed(1) + ')"><circle r="7"/><text y="-11">' +
        esc(v.name) + "</text></g>";
    });
    document.getElementById("routes").innerHTML = routes;
    document.getElementById("vehicles").innerHTML = marks;
  }

  function drawTrips(trips) {
    if (!trips.length) return;
    var rows = trips.map(function (t) {
      var eta = t.arrived_at != null ? "arrived " + clock(t.arrived_at) : t.eta != null ? clock(t.eta) : "—";
      var pr = t.progress.toFixed(3);
      return '<tr data-trip="' + esc(t.trip_id) + '" data-status="' + t.status + '" data-progress="' + pr +
        '" data-stops="' + t.stops + '"><td>' + esc(t.trip_id) + "</td><td>" + esc(t.vehicle_name) + "</td><td>" +
        esc(t.origin_name) + " → " + esc(t.destination_name) + '</td><td class="status ' + t.status + '">' + t.status +
        '</td><td><progress max="1" value="' + pr + '"></progress> ' + Math.round(t.progress * 100) + "%</td><td>" +
        Math.round(t.speed_kmh) + " km/h</td><td>" + t.stops + "</td><td>" + eta + "</td></tr>";
    });
    document.querySelector("#trips tbody").innerHTML = rows.join("");
  }

  function syncVehicleOptions(vehicles) {
    var select = document.getElementById("trip-vehicle");
    if (select.options.length === vehicles.length) return;
    var chosen = select.value;
    select.innerHTML = vehicles.map(function (v) {
      return '<option value="' + esc(v.id) + '">' + esc(v.name) + " (" + esc(v.id) + ")</option>";
    }).join("");
    if (chosen) select.value = chosen;
  }

  var live = document.getElementById("live");
  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = function () { live.textContent = "live"; live.className = "on"; };
    ws.onmessage = function (m) {
      var s = JSON.parse(m.data);
      drawVehicles(s.vehicles);
      drawTrips(s.trips);
      syncVehicleOptions(s.vehicles);
      var c = document.getElementById("clock");
      c.textContent = clock(s.clock) + " UTC (simulated)";
      c.setAttribute("data-clock", s.clock);
      var n = Number(document.body.getAttribute("data-ws-messages")) + 1;
      document.body.setAttribute("data-ws-messages", n);
    };
    ws.onclose = function () {
      live.textContent = "reconnecting…"; live.className = "off";
      setTimeout(connect, 1000);
    };
  }
  connect();

  var message = document.getElementById("message");
  function post(path, body, done) {
    fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (x) { message.textContent = x[0] ? done(x[1]) : "error: " + x[1].error; message.className = x[0] ? "" : "error"; })
      .catch(function (e) { message.textContent = "error: " + e; message.className = "error"; });
  }
  function values(form) {
    var o = {};
    Array.prototype.forEach.call(form.elements, function (e) { if (e.name) o[e.name] = e.value; });
    return o;
  }
  document.getElementById("new-vehicle").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var v = values(ev.target);
    post("/api/vehicles", v, function (j) { return "created " + j.id + " at " + placeNames[v.place]; });
  });
  document.getElementById("new-trip").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = values(ev.target);
    post("/api/trips", t, function (j) {
      return "trip " + j.trip_id + ": " + j.route.map(function (p) { return placeNames[p]; }).join(" → ") +
        " (" + (j.length_m / 1000).toFixed(1) + " km, about " + Math.round(j.free_flow_s / 60) + " min)";
    });
  });
  document.getElementById("promote").addEventListener("submit", function (ev) {
    ev.preventDefault();
    post("/api/promote", {}, function (j) {
      return "promoted " + j.day + ": " + j.staged + " reports staged, " + j.trips + " trips, " + j.vehicles + " vehicles";
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("#places .place"), function (g) {
    g.addEventListener("click", function (ev) {
      var id = g.getAttribute("data-place");
      document.getElementById(ev.shiftKey ? "trip-origin" : "trip-destination").value = id;
    });
  });
})();
