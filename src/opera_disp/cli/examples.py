"""Every command's examples for ``--help`` (and the generated CLI reference), as data.

Each entry is ``(what it does, the command line)``; the help prints them under
"Examples:" after the options. Every example runs as written on the embedded sample
archive (``--demo``) or names the placeholders a user fills in (``W,S,E,N``). A test
walks every command's help and checks each has two or three.
"""

from __future__ import annotations

#: By command path without the program name ("" is ``opera-disp`` itself).
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("Find granules over an area (here: the sample archive)", "opera-disp search --demo"),
        ("Masked COGs of the sample archive's deforming area",
         "opera-disp subset --demo -o output"),
        ("A time series with velocity and point series", "opera-disp timeseries --demo -o series"),
    ),
    "subset": (
        ("Run on the embedded sample archive", "opera-disp subset --demo -o output"),
        ("An area and dates from CMR, two layers",
         "opera-disp subset --bbox -103.80,24.39,-103.64,24.51 --start 2016-07-01 "
         "--end 2016-12-31 --frame 40291 --layers displacement,temporal_coherence -o output"),
        ("A local archive, a pixel window, on 4 dask workers",
         "opera-disp subset --source granules/ --window 700:1212,900:1412 "
         "--scheduler local:4 -o output"),
    ),
    "timeseries": (
        ("Run on the embedded sample archive (three points)",
         "opera-disp timeseries --demo -o series"),
        ("A reference point and the velocity map's colour range (mm/yr)",
         "opera-disp timeseries --demo --reference-point -103.66,24.40 --vmax 300 "
         "-o series"),
        ("From CMR, with point series",
         "opera-disp timeseries --frame 11116 --bbox -118.6,34.1,-118.3,34.3 "
         "--start 2019-11-01 --end 2021-12-31 --points \"-118.50,34.20;-118.40,34.25\" "
         "-o series"),
    ),
    "sample": (
        ("Six dates of frame 40291", "opera-disp sample granules/"),
        ("Two frames, twelve dates, a small grid",
         "opera-disp sample granules/ --frames 40291,11116 --dates 12 --shape 512x640"),
    ),
    "schema": (
        ("The JSON Schema of summary.json", "opera-disp schema"),
        ("The same as Markdown tables", "opera-disp schema --markdown"),
    ),
    "collection": (
        ("The collection's concept id (production CMR)", "opera-disp collection"),
        ("As JSON, from UAT", "opera-disp collection --cmr-url cmr.uat.earthdata.nasa.gov "
         "--json"),
    ),
    "search": (
        ("The sample archive's granules, filtered as CMR would",
         "opera-disp search --demo --start 2016-08-01 --end 2016-10-31"),
        ("CMR: an area and dates", "opera-disp search --bbox -104.57,23.92,-101.86,25.96 "
         "--start 2016-07-01 --end 2016-07-25"),
        ("A frame's granules as GeoJSON", "opera-disp search --frame 40291 --limit 20 "
         "-o granules.geojson"),
    ),
    "footprints": (
        ("The sample archive's footprints", "opera-disp footprints --demo -o footprints.html"),
        ("CMR granules of a frame, with the AOI on top",
         "opera-disp footprints --frame 40291 --aoi area.geojson --limit 50"),
    ),
    "download": (
        ("Copy the sample archive's first three granules",
         "opera-disp download --demo --limit 3 -o granules"),
        ("CMR granules of a frame and dates, 8 at a time",
         "opera-disp download --frame 40291 --start 2016-07-01 --end 2016-08-31 "
         "--workers 8 -o granules"),
    ),
    "inspect": (
        ("The sample archive's first granule", "opera-disp inspect --demo"),
        ("A remote granule, as JSON (2 round trips)",
         "opera-disp inspect https://HOST/PATH/OPERA_L3_DISP-S1_…nc --json"),
    ),
    "layout": (
        ("The sample archive's first granule", "opera-disp layout --demo"),
        ("A local file, as JSON", "opera-disp layout granules/OPERA_L3_DISP-S1_…nc --json"),
    ),
    "plot": (
        ("The sample archive's first granule over its deforming area",
         "opera-disp plot --demo -o plot.png"),
        ("Coherence of a window, fixed colour range",
         "opera-disp plot GRANULE.nc --layer temporal_coherence --window 0:512,0:512 "
         "--vmin 0 --vmax 1 -o coherence.png"),
        ("Unmasked displacement as SVG", "opera-disp plot GRANULE.nc --no-mask -o map.svg"),
    ),
    "decompose": (
        ("A synthetic ascending + descending pair", "opera-disp decompose --demo -o ground"),
        ("Two finished series with their DISP-S1-STATIC line-of-sight files",
         "opera-disp decompose --asc out/F40291 --desc out/F40292 --asc-los ASC_LOS_ENU.tif "
         "--desc-los DESC_LOS_ENU.tif -o ground"),
    ),
    "gnss": (
        ("Stations against a finished series on its line of sight",
         "opera-disp gnss --input out/F40291 --stations P123.tenv3,P456.tenv3 "
         "--los LOS_ENU.tif -o gnss"),
        ("Against a decomposition, relative to one station",
         "opera-disp gnss --input ground --stations a.csv,b.csv --reference-station a "
         "-o gnss"),
    ),
    "points": (
        ("More points from a finished series (e.g. of timeseries --demo -o series)",
         "opera-disp points series --points \"-103.70,24.45;-103.66,24.41\""),
        ("Points from a file of LON,LAT lines", "opera-disp points series --points points.txt"),
    ),
    "export": (
        ("MintPy files from a finished series (e.g. of timeseries --demo -o series)",
         "opera-disp export mintpy series"),
        ("With the frame's line-of-sight geometry (DISP-S1-STATIC)",
         "opera-disp export mintpy series --los-enu LOS_ENU.tif"),
    ),
    "export mintpy": (
        ("MintPy's timeseries.h5 and velocity.h5 of every frame",
         "opera-disp export mintpy series"),
        ("One frame, with geometryGeo.h5 from its DISP-S1-STATIC files",
         "opera-disp export mintpy series --frame 40291 --los-enu LOS_ENU.tif --dem DEM.tif "
         "--layover-shadow-mask MASK.tif"),
    ),
    "dps": (
        ("Plan jobs for an area and a year", "opera-disp dps plan --bbox W,S,E,N "
         "--start 2023-01-01 --end 2023-12-31 --save plan.json"),
        ("Submit, wait, merge", "opera-disp dps submit plan.json --ledger jobs.json && "
         "opera-disp dps status --ledger jobs.json --wait"),
    ),
    "dps plan": (
        ("Subset jobs of at most 50 granules", "opera-disp dps plan --bbox W,S,E,N "
         "--start 2023-01-01 --end 2023-12-31 --granules-per-job 50 --save plan.json"),
        ("One time-series job per 1024-pixel tile", "opera-disp dps plan --frame 40291 "
         "--product timeseries --tile-pixels 1024 --reference-point LON,LAT --save plan.json"),
    ),
    "dps submit": (
        ("Submit a saved plan", "opera-disp dps submit plan.json --ledger jobs.json"),
        ("Through the OGC API", "opera-disp dps submit plan.json --api ogc "
         "--process-id PROCESS --ledger jobs.json"),
    ),
    "dps status": (
        ("Poll once", "opera-disp dps status --ledger jobs.json"),
        ("Wait for every job, at most an hour",
         "opera-disp dps status --ledger jobs.json --wait --timeout 3600"),
    ),
    "dps collect": (
        ("Merge into one folder (in the ADE)", "opera-disp dps collect --ledger jobs.json "
         "--workspace /projects/my-private-bucket -o merged"),
        ("From a local copy of dps_output",
         "opera-disp dps collect --ledger jobs.json --workspace ./dps -o merged"),
    ),
}
