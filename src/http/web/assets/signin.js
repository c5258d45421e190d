// Completes a sign-in link: the page holds a form that spends the link with a POST.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("link-form");
  if (form) form.submit();
});
