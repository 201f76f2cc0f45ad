// The dashboard's script: the map (Leaflet, no tiles: a plain vector outline of the city) and
// live updates of the panels and markers over server-sent events. Bundled by esbuild into
// ../assets/dashboard.js (npm run build); the page works without it, but for the map.
import L from "leaflet";
import outline from "./brussels.json";

const COLORS = {
  closed: "#8a8f98",
  empty: "#d7263d",
  low: "#f49d37",
  ok: "#2a9d8f",
  full: "#3f51b5",
};

const map = L.map("map", { attributionControl: false, zoomSnap: 0.25 });
// A view first: Leaflet creates a marker's element only once the map has one.
map.fitBounds(L.geoJSON(outline).getBounds());
const background = L.geoJSON(outline, {
  style: (f) => f.properties.style,
  interactive: false,
}).addTo(map);
const layer = L.layerGroup().addTo(map);
const markers = new Map();
let fitted = false;

const legend = L.control({ position: "bottomleft" });
legend.onAdd = () => {
  const div = L.DomUtil.create("div", "legend");
  div.innerHTML = Object.entries(COLORS)
    .map(([k, c]) => `<span><i style="background:${c}"></i>${k}</span>`)
    .join("");
  return div;
};
legend.addTo(map);

function highlight(key) {
  document.querySelectorAll("tr.station.selected").forEach((r) => r.classList.remove("selected"));
  const row = document.querySelector(`tr.station[data-station="${CSS.escape(key)}"]`);
  if (row) {
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
}

// The marker's element says which station it is and its level (tests and styles read it).
function tag(mk) {
  const el = mk.getElement();
  const m = mk.station;
  if (el && m) {
    el.setAttribute("class", `leaflet-interactive station-marker level-${m.level}`);
    el.setAttribute("data-station", m.key);
    el.setAttribute("data-level", m.level);
  }
}

function draw(list) {
  const seen = new Set();
  for (const m of list) {
    seen.add(m.key);
    const style = {
      radius: 5 + Math.sqrt(m.bikes + m.stands),
      color: "#ffffff",
      weight: 1.5,
      fillColor: COLORS[m.level] || COLORS.closed,
      fillOpacity: 0.9,
    };
    let mk = markers.get(m.key);
    if (!mk) {
      mk = L.circleMarker([m.lat, m.lng], style).addTo(layer);
      mk.on("click", () => highlight(m.key));
      markers.set(m.key, mk);
    } else {
      mk.setStyle(style);
      mk.setRadius(style.radius);
    }
    mk.bindTooltip(`${m.name}: ${m.bikes} bikes, ${m.stands} stands`);
    mk.station = m;
    tag(mk);
  }
  for (const [key, mk] of markers) {
    if (!seen.has(key)) {
      layer.removeLayer(mk);
      markers.delete(key);
    }
  }
  if (!fitted) {
    const bounds = markers.size ? L.featureGroup([...markers.values()]).getBounds() : background.getBounds();
    map.fitBounds(bounds.pad(0.08));
    fitted = markers.size > 0;
    markers.forEach(tag);
  }
  document.body.dataset.markers = String(markers.size);
}

const initial = document.getElementById("markers");
draw(initial ? JSON.parse(initial.textContent) : []);

document.getElementById("panels").addEventListener("click", (e) => {
  const row = e.target.closest("tr.station");
  const mk = row && markers.get(row.dataset.station);
  if (mk) {
    map.panTo(mk.getLatLng());
    mk.openTooltip();
    highlight(row.dataset.station);
  }
});

if (window.EventSource) {
  const events = new EventSource("/events");
  events.addEventListener("update", (e) => {
    const d = JSON.parse(e.data);
    const selected = document.querySelector("tr.station.selected");
    document.getElementById("panels").innerHTML = d.panels;
    if (selected) highlight(selected.dataset.station);
    draw(d.markers);
  });
}
