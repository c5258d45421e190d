// The gallery page (filled in by later slices of issue 25).
"use strict";
