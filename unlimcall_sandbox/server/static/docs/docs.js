// Starts Swagger UI on the page's description (data-spec-url). Offline by construction: no
// validator badge (validatorUrl: null), and every request the page makes ("Try it out",
// the OAuth token request of the contract's production tokenUrl) goes to the origin that
// served the page, i.e. this sandbox.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var here = window.location.origin;
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
    requestInterceptor: function (request) {
      var target = new URL(request.url, window.location.href);
      if (target.origin !== here) {
        request.url = here + target.pathname + target.search;
      }
      return request;
    },
  });
})();
