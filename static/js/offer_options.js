/* Option-group builder of the offer form: edits the option groups of a configurable offer as
   labelled fields and writes them, as the JSON the API takes, into #id_option_groups. That
   textarea is what the server reads, and the editor when this script does not run. Errors the
   server reports by path ("0.options.1.price") are shown next to their input. No dependencies. */
(function () {
  "use strict";
  var el = window.B2P.el;  // static/js/dom.js
  var source = document.getElementById("id_option_groups");
  var root = document.getElementById("option-builder");
  if (!source || !root) { return; }
  var box = document.getElementById("option-groups");
  var jsonBox = document.getElementById("option-groups-json");
  var kind = document.getElementById("id_kind");
  var L = JSON.parse(document.getElementById("option-builder-labels").textContent);
  var errors = JSON.parse(document.getElementById("option-builder-errors").textContent) || {};
  var status = el("p", {"class": "visually-hidden", role: "status"});
  var groups = parse(source.value);
  var jsonInvalid = groups === null;

  // Helpers ---------------------------------------------------------------------------------

  function fmt(text, n) { return text.replace("%(n)s", String(n)); }
  function idFor(path) { return "og-" + path.replace(/\./g, "-"); }
  function str(v) { return v === undefined || v === null ? "" : String(v); }
  function list(v) { return Array.isArray(v) ? v.map(String) : []; }
  function isInt(v) { return /^\s*\d+\s*$/.test(str(v)); }
  function slug(text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
  }
  function configurable() { return !kind || kind.value === "configurable"; }

  function parse(text) {
    if (!text.trim()) { return []; }
    var value;
    try { value = JSON.parse(text); } catch (e) { return null; }
    if (!Array.isArray(value) || !value.every(function (g) { return g && typeof g === "object" && !Array.isArray(g); })) { return null; }
    return value.map(function (g) {
      return {
        key: str(g.key), label: str(g.label),
        min_select: g.min_select === undefined ? 1 : g.min_select, max_select: g.max_select === undefined ? 1 : g.max_select,
        options: (Array.isArray(g.options) ? g.options : []).filter(function (o) { return o && typeof o === "object"; }).map(function (o) {
          return {key: str(o.key), label: str(o.label), price: str(o.price), requires: list(o.requires), excludes: list(o.excludes)};
        })
      };
    });
  }
  function serialize() {
    return groups.map(function (g) {
      return {
        key: g.key.trim(), label: g.label.trim(),
        min_select: isInt(g.min_select) ? parseInt(g.min_select, 10) : str(g.min_select),
        max_select: isInt(g.max_select) ? parseInt(g.max_select, 10) : str(g.max_select),
        options: g.options.map(function (o) {
          return {key: o.key.trim(), label: o.label.trim(), price: str(o.price).trim(), requires: o.requires, excludes: o.excludes};
        })
      };
    });
  }
  function write() {
    // An empty list for a configurable offer says "no groups" (which the server refuses), not "unchanged".
    source.value = groups.length ? JSON.stringify(serialize(), null, 1) : (configurable() ? "[]" : "");
  }
  function announce(message) {
    status.textContent = "";
    window.setTimeout(function () { status.textContent = message; }, 50);
  }
  function fullKey(g, o) { return g.key.trim() + "." + o.key.trim(); }
  function owners(name) {
    var n = 0;
    groups.forEach(function (g) { g.options.forEach(function (o) { if (fullKey(g, o) === name) { n += 1; } }); });
    return n;
  }
  // Rules name options as "group.option": follow a renamed key, unless the old or new name is
  // another option's too (then the rule would silently move to that one).
  function rename(before, after) {
    if (before === after || owners(after) !== 1 || owners(before) !== 0) { return; }
    groups.forEach(function (g) {
      g.options.forEach(function (o) {
        ["requires", "excludes"].forEach(function (k) { o[k] = o[k].map(function (r) { return r === before ? after : r; }); });
      });
    });
  }
  function uniqueKey(base, taken) {
    if (!base) { return ""; }
    var key = base, n = 2;
    while (taken.indexOf(key) !== -1) { key = base + "-" + n; n += 1; }
    return key;
  }

  // Fields ----------------------------------------------------------------------------------

  function field(path, text, control, help, extraClass) {
    var id = idFor(path);
    control.id = id;
    control.setAttribute("data-path", path);
    var label = el("label", {"for": id, text: text});
    var wrap = el("div", {"class": "field" + (extraClass ? " " + extraClass : "")},
      control.type === "checkbox" ? [control, label] : [label, control]);
    if (help) {
      wrap.appendChild(el("small", {"class": "help", id: id + "-help", text: help}));
      control.setAttribute("aria-describedby", id + "-help");
    }
    return wrap;
  }
  function input(type, value, onInput, attrs) {
    var node = el("input", Object.assign({type: type}, attrs || {}));
    node.value = str(value);
    node.addEventListener("input", function () { clearError(node); onInput(node.value); write(); });
    return node;
  }
  function button(text, path, onClick, attrs) {
    var node = el("button", Object.assign({type: "button", "data-path": path, text: text}, attrs || {}));
    node.addEventListener("click", onClick);
    return node;
  }

  function setKey(g, o, value) {
    var befores = o ? [fullKey(g, o)] : g.options.map(function (x) { return fullKey(g, x); });
    if (o) { o.key = value; } else { g.key = value; }
    var afters = o ? [fullKey(g, o)] : g.options.map(function (x) { return fullKey(g, x); });
    befores.forEach(function (before, i) { rename(before, afters[i]); });
    refreshRefs();
  }

  function renderGroup(g, gi) {
    var path = String(gi);
    var node = el("fieldset", {"class": "og-group", "data-path": path, "data-testid": "option-group"});
    node.appendChild(el("legend", {text: fmt(L.group, gi + 1)}));
    var keyInput = input("text", g.key, function (v) { g.autoKey = false; setKey(g, null, v); },
      {maxlength: "64", autocomplete: "off", spellcheck: "false"});
    var labelInput = input("text", g.label, function (v) {
      g.label = v;
      if (g.autoKey) {
        keyInput.value = uniqueKey(slug(v), groups.filter(function (x) { return x !== g; }).map(function (x) { return x.key; }));
        clearError(keyInput);
        setKey(g, null, keyInput.value);
      }
      refreshRefs();
    }, {maxlength: "120"});
    node.appendChild(el("div", {"class": "og-row"}, [
      field(path + ".label", L.label, labelInput), field(path + ".key", L.key, keyInput, L.key_help)
    ]));

    var minInput, maxInput;
    var required = el("input", {type: "checkbox"});
    required.checked = isInt(g.min_select) && parseInt(g.min_select, 10) >= 1;
    required.addEventListener("change", function () {
      var low = isInt(g.min_select) ? parseInt(g.min_select, 10) : 0;
      g.min_select = required.checked ? Math.max(1, low) : 0;
      if (required.checked && (!isInt(g.max_select) || parseInt(g.max_select, 10) < g.min_select)) { g.max_select = g.min_select; }
      minInput.value = str(g.min_select);
      maxInput.value = str(g.max_select);
      clearError(minInput);
      write();
    });
    minInput = input("number", g.min_select, function (v) { g.min_select = v; required.checked = isInt(v) && parseInt(v, 10) >= 1; },
      {min: "0", step: "1", inputmode: "numeric"});
    maxInput = input("number", g.max_select, function (v) { g.max_select = v; }, {min: "1", step: "1", inputmode: "numeric"});
    node.appendChild(el("div", {"class": "og-row"}, [
      field(path + ".required", L.required, required, "", "og-check"),
      field(path + ".min_select", L.min_select, minInput), field(path + ".max_select", L.max_select, maxInput)
    ]));

    var options = el("fieldset", {"class": "og-options", "data-path": path + ".options"}, [el("legend", {text: L.options})]);
    g.options.forEach(function (o, oi) { options.appendChild(renderOption(g, gi, o, oi)); });
    options.appendChild(button("+ " + L.add_option, path + ".add-option", function () {
      g.options.push({key: "", label: "", price: "", requires: [], excludes: [], autoKey: true});
      changed(path + ".options." + (g.options.length - 1) + ".label", L.added);
    }, {"data-testid": "add-option"}));
    node.appendChild(options);

    var name = fmt(L.group, gi + 1);
    node.appendChild(el("div", {"class": "og-actions"}, [
      gi > 0 ? button("↑", path + ".up", function () { move(groups, gi, -1, ""); }, {"aria-label": L.move_up + ": " + name}) : null,
      gi < groups.length - 1 ? button("↓", path + ".down", function () { move(groups, gi, 1, ""); }, {"aria-label": L.move_down + ": " + name}) : null,
      button(L.remove_group, path + ".remove", function () {
        groups.splice(gi, 1);
        changed("add-group", L.removed);
      }, {"class": "danger", "aria-label": L.remove_group + ": " + name})
    ]));
    return node;
  }

  function renderOption(g, gi, o, oi) {
    var path = gi + ".options." + oi;
    var node = el("fieldset", {"class": "og-option", "data-path": path, "data-testid": "option"});
    var name = fmt(L.option, oi + 1);
    node.appendChild(el("legend", {text: name}));
    var keyInput = input("text", o.key, function (v) { o.autoKey = false; setKey(g, o, v); },
      {maxlength: "64", autocomplete: "off", spellcheck: "false"});
    var labelInput = input("text", o.label, function (v) {
      o.label = v;
      if (o.autoKey) {
        keyInput.value = uniqueKey(slug(v), g.options.filter(function (x) { return x !== o; }).map(function (x) { return x.key; }));
        clearError(keyInput);
        setKey(g, o, keyInput.value);
      }
      refreshRefs();
    }, {maxlength: "120"});
    var price = input("number", o.price, function (v) { o.price = v; }, {min: "0", step: "0.01", inputmode: "decimal"});
    node.appendChild(el("div", {"class": "og-row"}, [
      field(path + ".label", L.label, labelInput), field(path + ".key", L.key, keyInput), field(path + ".price", L.price, price)
    ]));
    var refs = ["requires", "excludes"].map(function (k) {
      var select = el("select", {multiple: "multiple", "data-ref": k});
      select.addEventListener("change", function () {
        clearError(select);
        o[k] = Array.prototype.map.call(select.selectedOptions, function (x) { return x.value; });
        write();
      });
      select.refsOf = function () { return {group: g, option: o, kind: k}; };
      select.setAttribute("aria-describedby", idFor(path) + "-refs-help");
      return field(path + "." + k, L[k], select);
    });
    node.appendChild(el("div", {"class": "og-row"}, refs));
    node.appendChild(el("small", {"class": "help", id: idFor(path) + "-refs-help", text: L.refs_help}));
    node.appendChild(el("div", {"class": "og-actions"}, [
      oi > 0 ? button("↑", path + ".up", function () { move(g.options, oi, -1, gi + ".options."); }, {"aria-label": L.move_up + ": " + name}) : null,
      oi < g.options.length - 1 ? button("↓", path + ".down", function () { move(g.options, oi, 1, gi + ".options."); },
        {"aria-label": L.move_down + ": " + name}) : null,
      button(L.remove_option, path + ".remove", function () {
        g.options.splice(oi, 1);
        changed(gi + ".add-option", L.removed);
      }, {"class": "danger", "aria-label": L.remove_option + ": " + fmt(L.group, gi + 1) + ", " + name})
    ]));
    return node;
  }

  function move(items, index, step, prefix) {
    var target = index + step;
    var moved = items.splice(index, 1)[0];
    items.splice(target, 0, moved);
    var direction = step < 0 ? ".up" : ".down", other = step < 0 ? ".down" : ".up";
    changed([prefix + target + direction, prefix + target + other], L.moved);
  }

  // Rule pickers list every other option by its names; a rule naming an option that is gone
  // stays listed (and selected) so that the server can say so rather than it vanishing quietly.
  function refreshRefs() {
    var all = [];
    groups.forEach(function (g) {
      g.options.forEach(function (o) {
        if (g.key.trim() && o.key.trim()) { all.push({value: fullKey(g, o), text: (g.label || g.key) + ": " + (o.label || o.key), option: o}); }
      });
    });
    Array.prototype.forEach.call(root.querySelectorAll("select[data-ref]"), function (select) {
      if (select === document.activeElement) { return; }
      var ref = select.refsOf();
      var chosen = ref.option[ref.kind];
      var choices = all.filter(function (c) { return c.option !== ref.option; });
      chosen.forEach(function (value) {
        if (!choices.some(function (c) { return c.value === value; })) { choices.push({value: value, text: value + " (?)"}); }
      });
      select.textContent = "";
      choices.forEach(function (c) {
        var opt = el("option", {value: c.value, text: c.text});
        opt.selected = chosen.indexOf(c.value) !== -1;
        select.appendChild(opt);
      });
      select.size = Math.max(2, Math.min(5, choices.length));
    });
  }

  // Errors from the server, by path -----------------------------------------------------------

  function clearError(control) {
    var path = control.getAttribute("data-path");
    if (!path || !errors[path]) { return; }
    delete errors[path];
    var message = document.getElementById(control.id + "-error");
    if (message) { message.remove(); }
    control.removeAttribute("aria-invalid");
    var described = (control.getAttribute("aria-describedby") || "").split(" ").filter(function (x) { return x && x !== control.id + "-error"; });
    if (described.length) { control.setAttribute("aria-describedby", described.join(" ")); } else { control.removeAttribute("aria-describedby"); }
  }
  function showErrors() {
    Object.keys(errors).forEach(function (path) {
      var parts = path.split("."), target = null;
      while (parts.length && !target) {
        target = root.querySelector('[data-path="' + parts.join(".") + '"]:not(button)');
        parts.pop();
      }
      var text = errors[path].join(" ");
      if (!target) { root.insertBefore(el("p", {"class": "error", text: text}), root.firstChild); return; }
      if (target.tagName === "FIELDSET") {
        var legend = target.querySelector("legend");
        target.insertBefore(el("p", {"class": "error", text: text}), legend ? legend.nextSibling : target.firstChild);
        return;
      }
      var message = el("p", {"class": "error", id: target.id + "-error", text: text});
      target.parentNode.appendChild(message);
      target.setAttribute("aria-invalid", "true");
      target.setAttribute("aria-describedby", ((target.getAttribute("aria-describedby") || "") + " " + message.id).trim());
    });
  }

  // Drawing ---------------------------------------------------------------------------------

  function focus(paths) {
    [].concat(paths || []).some(function (path) {
      var target = root.querySelector('[data-path="' + path + '"]');
      if (target) { target.focus(); }
      return !!target;
    });
  }
  function render(focusPaths) {
    root.textContent = "";
    root.hidden = false;
    if (jsonInvalid) {
      root.appendChild(el("p", {"class": "error", text: L.invalid_json}));
      if (jsonBox) { jsonBox.open = true; }
      return;
    }
    if (!groups.length) { root.appendChild(el("p", {"class": "empty", text: L.empty})); }
    groups.forEach(function (g, gi) { root.appendChild(renderGroup(g, gi)); });
    root.appendChild(button("+ " + L.add_group, "add-group", function () {
      groups.push({key: "", label: "", min_select: 1, max_select: 1, autoKey: true,
                   options: [{key: "", label: "", price: "", requires: [], excludes: [], autoKey: true}]});
      changed((groups.length - 1) + ".label", L.added);
    }, {"data-testid": "add-group"}));
    root.appendChild(status);
    refreshRefs();
    showErrors();
    focus(focusPaths);
  }
  // A change of structure renumbers the paths, so the server's errors no longer point anywhere.
  function changed(focusPaths, message) {
    errors = {};
    render(focusPaths);
    write();
    if (message) { announce(message); }
  }

  function showForKind() { box.hidden = !configurable(); }

  source.addEventListener("change", function () {
    var parsed = parse(source.value);
    jsonInvalid = parsed === null;
    if (!jsonInvalid) { groups = parsed; errors = {}; }
    render();
  });
  source.form.addEventListener("submit", function () {
    if (!configurable()) { source.value = ""; } else if (!jsonInvalid) { write(); }
  });
  if (kind) { kind.addEventListener("change", showForKind); }
  showForKind();
  if (!jsonInvalid && jsonBox) { jsonBox.open = false; }
  render();
})();
