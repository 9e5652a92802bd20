"use strict";
// Filter, sort, search and pages over the cards the page already holds: only one page of cards is in the
// document at a time, so 20,000 rows never lay out (or decode their thumbnails) at once. The state lives in the
// address's #fragment, so a filtered view can be bookmarked or sent.
(function () {
  var list = document.getElementById("cards");
  var PAGE = parseInt(list.getAttribute("data-page"), 10);
  var cards = Array.prototype.slice.call(list.children);
  var get = function (id) { return document.getElementById(id); };
  var filter = get("filter"), sort = get("sort"), search = get("search"), tiles = get("tiles");
  var shown = get("shown"), prev = get("prev"), next = get("next");
  var page = 0, selected = cards;
  cards.forEach(function (card, i) {
    card.position = i;
    card.name = card.getAttribute("data-name");
    card.text = card.getAttribute("data-text");
  });
  var tests = {
    all: function () { return true; },
    flagged: function (c) { return c.classList.contains("flagged"); },
    declared: function (c) { return c.classList.contains("declared"); },
    errors: function (c) { return c.classList.contains("error"); },
    suppressed: function (c) { return c.classList.contains("suppressed"); }
  };
  function byName(a, b) {
    var ea = a.classList.contains("error"), eb = b.classList.contains("error");
    if (ea !== eb) return ea ? 1 : -1;  // error cards stay at the end, grouped by code
    if (ea) return a.position - b.position;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : a.position - b.position;
  }
  function draw() {
    var start = page * PAGE, end = Math.min(selected.length, start + PAGE);
    var slice = selected.slice(start, end);
    slice.forEach(function (card) {
      card.hidden = false;
      var image = card.querySelector("img[data-src]");
      if (image) { image.src = image.getAttribute("data-src"); image.removeAttribute("data-src"); }
    });
    list.replaceChildren.apply(list, slice);
    shown.textContent = selected.length ? "cards " + (start + 1) + "\u2013" + end + " of " + selected.length
                                        : "no card matches";
    prev.disabled = page === 0;
    next.disabled = end >= selected.length;
    try {
      history.replaceState(null, "", "#" + new URLSearchParams({filter: filter.value, sort: sort.value,
                                                                  q: search.value, page: page + 1}));
    } catch (e) { /* some browsers refuse history changes for file: pages; the view still works */ }
  }
  function select() {
    var test = tests[filter.value] || tests.all, query = search.value.trim().toLowerCase();
    selected = cards.filter(function (c) { return test(c) && (!query || c.text.indexOf(query) >= 0); });
    selected.sort(sort.value === "name" ? byName : function (a, b) { return a.position - b.position; });
    page = 0;
    draw();
  }
  var state = new URLSearchParams(location.hash.slice(1));
  if (tests[state.get("filter")]) filter.value = state.get("filter");
  if (state.get("sort") === "name") sort.value = "name";
  search.value = state.get("q") || "";
  filter.onchange = sort.onchange = select;
  search.oninput = select;
  prev.onclick = function () { page -= 1; draw(); window.scrollTo(0, 0); };
  next.onclick = function () { page += 1; draw(); window.scrollTo(0, 0); };
  tiles.onchange = function () { document.body.classList.toggle("hide-tiles", !tiles.checked); };
  select();
  var wanted = parseInt(state.get("page"), 10) - 1;
  if (wanted > 0 && wanted * PAGE < selected.length) { page = wanted; draw(); }
})();
