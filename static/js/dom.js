/* Small DOM helpers the dashboard's form builders share (segment builder, option groups). */
(function () {
  "use strict";
  var B2P = window.B2P = window.B2P || {};

  /* el("p", {"class": "x", text: "words"}, [children]): an element with attributes (text sets
     textContent, never HTML) and children (falsy ones skipped). */
  B2P.el = function (tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  };
}());
