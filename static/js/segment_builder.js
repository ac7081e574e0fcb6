/* Segment builder: edits the definition JSON in #id_definition as a tree of groups and conditions.
   The JSON textarea stays the source of truth (and works without this script); every change
   rewrites it and fires "definition-changed", on which htmx asks the server for a live count. */
(function () {
  "use strict";
  var el = window.B2P.el;  // static/js/dom.js
  var root = document.getElementById("segment-builder");
  var source = document.getElementById("id_definition");
  if (!root || !source) { return; }
  var meta = JSON.parse(document.getElementById("builder-metadata").textContent);
  var L = meta.labels;
  var definition;
  try { definition = JSON.parse(source.value); } catch (e) { definition = null; }
  if (!definition || !Array.isArray(definition.conditions)) { definition = {match: "all", conditions: []}; }

  function select(label, options, value, onChange) {
    var s = el("select", {"aria-label": label});
    Object.keys(options).forEach(function (key) {
      var o = el("option", {value: key, text: options[key]});
      if (String(key) === String(value)) { o.selected = true; }
      s.appendChild(o);
    });
    s.addEventListener("change", function () { onChange(s.value); });
    return s;
  }
  function input(label, type, value, onChange) {
    var i = el("input", {type: type, "aria-label": label});
    i.value = value === undefined || value === null ? "" : value;
    i.addEventListener("change", function () { onChange(i.value); });
    return i;
  }
  function opsFor(names) { var o = {}; names.forEach(function (n) { o[n] = meta.ops[n] || n; }); return o; }
  function asNumber(v) { var n = Number(v); return v === "" || isNaN(n) ? v : n; }
  function changed() {
    source.value = JSON.stringify(definition);
    render();
    document.body.dispatchEvent(new Event("definition-changed"));
  }
  var defaults = {
    profile: function () { return {type: "profile", field: "kind", op: "eq", value: "consumer"}; },
    attribute: function () { var a = meta.attributes[0]; return {type: "attribute", key: a ? a.key : "", op: "eq", value: ""}; },
    company: function () { return {type: "company", field: "size", op: "eq", value: "10-49"}; },
    consent: function () { return {type: "consent", purpose: "marketing", channel: "email", status: "granted"}; },
    event: function () { return {type: "event", event_type: meta.event_types[0], op: "did", within_days: 30}; },
    order: function () { return {type: "order", measure: "count", op: "gte", value: 1}; },
    score: function () { return {type: "score", field: "churn_probability", op: "gte", value: 0.5}; },
    segment: function () { var s = meta.segments[0]; return {type: "segment", segment_id: s ? s.id : 0, op: "in"}; }
  };

  function valueInput(cond, kind, choices) {
    if (cond.op === "is_set" || cond.op === "is_not_set") { return null; }
    if (cond.op === "in") {
      return input(L.value, "text", (cond.value || []).join(", "), function (v) {
        cond.value = v.split(",").map(function (x) { return kind === "number" ? asNumber(x.trim()) : x.trim(); }).filter(function (x) { return x !== ""; });
        changed();
      });
    }
    if (cond.op === "within_days" || cond.op === "not_within_days") {
      return input(L.days, "number", cond.value, function (v) { cond.value = parseInt(v, 10); changed(); });
    }
    if (cond.op === "before" || cond.op === "after" || kind === "date") {
      return input(L.value, "date", cond.value, function (v) { cond.value = v; changed(); });
    }
    if (choices) { return select(L.value, choices, cond.value, function (v) { cond.value = kind === "int" ? parseInt(v, 10) : v; changed(); }); }
    if (kind === "boolean") { return select(L.value, {"true": "✓", "false": "✗"}, String(cond.value), function (v) { cond.value = v === "true"; changed(); }); }
    return input(L.value, kind === "number" ? "number" : "text", cond.value, function (v) { cond.value = kind === "number" ? asNumber(v) : v; changed(); });
  }

  function fieldControls(cond) {
    var parts = [];
    if (cond.type === "profile" || cond.type === "company" || cond.type === "score") {
      var fields = meta[cond.type];
      var names = {}; Object.keys(fields).forEach(function (k) { names[k] = fields[k].label; });
      parts.push(select(L.value, names, cond.field, function (v) { cond.field = v; cond.op = fields[v].ops[0]; cond.value = ""; changed(); }));
      var spec = fields[cond.field] || fields[Object.keys(fields)[0]];
      parts.push(select(L.match, opsFor(spec.ops), cond.op, function (v) { cond.op = v; changed(); }));
      var choices = cond.field === "kind" ? meta.choices.kind : cond.field === "size" ? meta.choices.size : cond.field === "rfm_group" ? meta.choices.rfm_group : null;
      var kind = /_at$/.test(cond.field) ? "date" : cond.type === "score" && cond.field !== "rfm_group" ? (cond.field === "cluster" ? "int" : "number") : "text";
      parts.push(valueInput(cond, kind, cond.op === "in" ? null : choices));
    } else if (cond.type === "attribute") {
      var keys = {}; meta.attributes.forEach(function (a) { keys[a.key] = a.label; });
      if (cond.key && !keys[cond.key]) { keys[cond.key] = cond.key; }
      parts.push(select(L.value, keys, cond.key, function (v) { cond.key = v; changed(); }));
      var attr = meta.attributes.filter(function (a) { return a.key === cond.key; })[0];
      parts.push(select(L.match, opsFor(attr ? attr.ops : ["eq", "neq", "contains", "gt", "gte", "lt", "lte", "is_set", "is_not_set"]), cond.op, function (v) { cond.op = v; changed(); }));
      var attrChoices = attr && attr.type === "choice" ? attr.choices.reduce(function (o, c) { o[c] = c; return o; }, {}) : null;
      parts.push(valueInput(cond, attr ? attr.type : (typeof cond.value === "number" ? "number" : "text"), attrChoices));
    } else if (cond.type === "consent") {
      parts.push(select(L.value, meta.consent.purposes, cond.purpose, function (v) { cond.purpose = v; changed(); }));
      parts.push(select(L.value, meta.consent.channels, cond.channel, function (v) { cond.channel = v; changed(); }));
      parts.push(select(L.value, meta.consent.statuses, cond.status, function (v) { cond.status = v; changed(); }));
    } else if (cond.type === "event") {
      parts.push(select(L.match, opsFor(meta.event_ops), cond.op, function (v) { cond.op = v; if (v === "at_least" || v === "fewer_than") { cond.count = cond.count || 2; } changed(); }));
      var type = input(L.value, "text", cond.event_type, function (v) { cond.event_type = v.trim(); changed(); });
      type.setAttribute("list", "event-types");
      parts.push(type);
      if (cond.op === "at_least" || cond.op === "fewer_than") {
        parts.push(input(L.times, "number", cond.count, function (v) { cond.count = parseInt(v, 10); changed(); }));
        parts.push(el("span", {text: L.times}));
      }
      parts.push(el("span", {text: L.within}));
      parts.push(input(L.within, "number", cond.within_days, function (v) { cond.within_days = v === "" ? null : parseInt(v, 10); changed(); }));
    } else if (cond.type === "order") {
      parts.push(select(L.value, meta.order_measures, cond.measure, function (v) { cond.measure = v; if (v === "days_since_last") { delete cond.within_days; } changed(); }));
      parts.push(select(L.match, opsFor(meta.order_ops), cond.op, function (v) { cond.op = v; changed(); }));
      parts.push(input(L.value, "number", cond.value, function (v) { cond.value = asNumber(v); changed(); }));
      if (cond.measure !== "days_since_last") {
        parts.push(el("span", {text: L.within}));
        parts.push(input(L.within, "number", cond.within_days, function (v) { cond.within_days = v === "" ? null : parseInt(v, 10); changed(); }));
      }
    } else if (cond.type === "segment") {
      parts.push(select(L.match, {"in": meta.ops.in_segment, "not_in": meta.ops.not_in}, cond.op, function (v) { cond.op = v; changed(); }));
      var segs = {}; meta.segments.forEach(function (s) { segs[s.id] = s.name; });
      parts.push(select(L.value, segs, cond.segment_id, function (v) { cond.segment_id = parseInt(v, 10); changed(); }));
    }
    return parts;
  }

  function renderGroup(group, parent, index) {
    var box = el("div", {"class": "seg-group", role: "group"});
    var head = el("div", {"class": "seg-head"}, [
      el("span", {text: L.match}),
      select(L.match, {all: L.all, any: L.any}, group.match || "all", function (v) { group.match = v; changed(); })
    ]);
    if (parent) {
      var drop = el("button", {type: "button", "class": "link", text: L.remove});
      drop.addEventListener("click", function () { parent.conditions.splice(index, 1); changed(); });
      head.appendChild(drop);
    }
    box.appendChild(head);
    var list = el("ol", {"class": "seg-conditions"});
    group.conditions.forEach(function (cond, i) {
      var item = el("li", {"data-testid": "condition"});
      if (cond.type === "group") { item.appendChild(renderGroup(cond, group, i)); list.appendChild(item); return; }
      item.appendChild(select(L.value, meta.types, cond.type, function (v) { group.conditions[i] = defaults[v](); changed(); }));
      fieldControls(cond).forEach(function (p) { if (p) { item.appendChild(p); } });
      var remove = el("button", {type: "button", "class": "link", text: L.remove, "aria-label": L.remove});
      remove.addEventListener("click", function () { group.conditions.splice(i, 1); changed(); });
      item.appendChild(remove);
      list.appendChild(item);
    });
    box.appendChild(list);
    var addCond = el("button", {type: "button", text: "+ " + L.add_condition, "data-testid": "add-condition"});
    addCond.addEventListener("click", function () { group.conditions.push(defaults.profile()); changed(); });
    var addGroup = el("button", {type: "button", text: "+ " + L.add_group});
    addGroup.addEventListener("click", function () { group.conditions.push({type: "group", match: "any", conditions: [defaults.profile()]}); changed(); });
    box.appendChild(el("div", {"class": "seg-actions"}, [addCond, addGroup]));
    return box;
  }

  function render() {
    root.innerHTML = "";
    root.appendChild(renderGroup(definition, null, 0));
    var types = el("datalist", {id: "event-types"});
    meta.event_types.forEach(function (t) { types.appendChild(el("option", {value: t})); });
    root.appendChild(types);
  }

  source.addEventListener("change", function () {
    try { definition = JSON.parse(source.value); render(); document.body.dispatchEvent(new Event("definition-changed")); } catch (e) { /* keep editing */ }
  });
  render();
})();
