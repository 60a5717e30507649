// Live calls: swap in a fresh table every 3 s, unless the user is typing in it (a refresh
// would take their focus and their half-typed digits).
(function () {
  var box = document.getElementById("live");
  if (!box) return;
  setInterval(function () {
    if (box.contains(document.activeElement) && document.activeElement !== document.body) return;
    fetch(box.dataset.src, {credentials: "same-origin"}).then(function (r) {
      if (r.ok) return r.text();
    }).then(function (html) { if (html !== undefined) box.innerHTML = html; });
  }, 3000);
})();
