// Wide tables scroll sideways inside their own box on a narrow screen instead of
// pushing the whole page sideways. While a box actually scrolls it is made a named,
// keyboard-focusable region, so people without a mouse or touch can scroll it too.
(function () {
  "use strict";

  function tableName(table) {
    var caption = table.querySelector("caption");
    if (caption) return caption.textContent.trim();
    if (table.getAttribute("aria-label")) return table.getAttribute("aria-label");
    var node = table.closest(".table-scroll");
    while ((node = node.previousElementSibling)) {
      if (/^H[1-6]$/.test(node.tagName)) return node.textContent.trim();
    }
    return "Table";
  }

  var boxes = [];
  document.querySelectorAll("main table").forEach(function (table) {
    if (table.parentElement.classList.contains("table-scroll")) return;
    var box = document.createElement("div");
    box.className = "table-scroll";
    table.parentNode.insertBefore(box, table);
    box.appendChild(table);
    boxes.push(box);
  });

  function update() {
    boxes.forEach(function (box) {
      if (box.scrollWidth > box.clientWidth) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", tableName(box.firstElementChild) + " (scrolls sideways)");
      } else {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    });
  }

  update();
  window.addEventListener("resize", update);
})();
