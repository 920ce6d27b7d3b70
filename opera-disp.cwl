# Generated from algorithm_config.yaml by `python -m opera_disp.cwl`; do not edit.
# tests/test_cwl.py checks that it is up to date.
cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
s:author:
- class: s:Person
  s:name: opera-disp
s:contributor:
- class: s:Person
  s:name: opera-disp
s:citation: https://github.com/opera-disp/opera-disp
s:codeRepository: https://github.com/opera-disp/opera-disp.git
s:keywords: OGC, OPERA, DISP-S1, InSAR, Sentinel-1, displacement, COG, STAC
s:license: Apache-2.0
s:releaseNotes: https://github.com/opera-disp/opera-disp/releases/tag/0.2.0
s:softwareVersion: 0.2.0
s:version: 0.2.0
$graph:
- class: Workflow
  id: opera-disp-subset
  label: opera-disp-subset
  doc: 'Subset OPERA L3 DISP-S1 granules to an area and time range: apply recommended_mask and write
    masked displacement (and any other layer) as Cloud-Optimized GeoTIFFs, quicklook PNGs and a machine-readable
    summary.json.'
  inputs:
    granule_list:
      label: Granule list
      doc: Optional text file of granule names, paths or URLs (one per line). A .nc granule given
        here instead is used as a local archive.
      type: File?
    granules:
      label: Granules
      doc: Comma-separated granule names or URLs (empty = search instead).
      type: string?
    bbox:
      label: Bounding box
      doc: Area as W,S,E,N in degrees, e.g. -103.80,24.39,-103.64,24.51.
      type: string?
    aoi:
      label: AOI
      doc: AOI as inline GeoJSON (Polygon/MultiPolygon); outside pixels become nodata.
      type: string?
    window:
      label: Window
      doc: Pixel window ROW0:ROW1,COL0:COL1 of the frame grid (half-open).
      type: string?
    start:
      label: Start
      doc: First secondary date (ISO).
      type: string?
    end:
      label: End
      doc: Last secondary date (ISO, inclusive).
      type: string?
    frame:
      label: Frame
      doc: Frame number, e.g. 40291.
      type: int?
    layers:
      label: Layers
      doc: 'Comma-separated layers to write (default displacement; a time series: the one layer of
        the series).'
      type: string?
      default: displacement
    mask:
      label: Mask
      doc: 'recommended (default: apply recommended_mask) or none (write the mask as its own COG;
        a time series: no mask).'
      type: string?
      default: recommended
    tolerated_failure_percentage:
      label: Tolerated failure percentage
      doc: Percentage of granules allowed to fail before the job fails (default 0).
      type: float?
      default: 0.0
    workers:
      label: Workers
      doc: Granules processed concurrently (default 2).
      type: int?
      default: 2
    limit:
      label: Limit
      doc: At most this many granules.
      type: int?
    access:
      label: Access
      doc: 'auto (default: S3 in us-west-2, else HTTPS), https, s3 or local.'
      type: string?
      default: auto
    cmr_url:
      label: CMR URL
      doc: 'CMR: a host (cmr.earthdata.nasa.gov, as maap-py''s cmr_host), a base URL or the search
        URL (default $OPERA_DISP_CMR_URL or production).'
      type: string?
    cog_writer:
      label: COG writer
      doc: 'subset: COG encoder: streaming (opera-disp''s, compresses while reading) or gdal (GDAL''s
        COG driver, the way out of an encoder bug) (default streaming).'
      type: string?
    product:
      label: Product
      doc: 'subset (default: masked COGs per granule) or timeseries (one rebased, corrected, re-referenced
        series and velocity per frame).'
      type: string?
    corrections:
      label: Corrections
      doc: 'timeseries: /corrections layers subtracted before rebasing: solid_earth_tide, ionospheric_delay
        (comma-separated), or none (default solid_earth_tide).'
      type: string?
    nan_policy:
      label: Nan policy
      doc: 'timeseries: a NaN in a reference-crossover product: propagate (later dates NaN) or omit
        (counted as 0), as opera-utils (default propagate).'
      type: string?
    reference_point:
      label: Reference point
      doc: 'timeseries: LON,LAT of the spatial reference pixel (implies reference_method point).'
      type: string?
    reference_method:
      label: Reference method
      doc: 'timeseries: stable (default without a point), point, median, high-coherence or none.'
      type: string?
    coherence_threshold:
      label: Coherence threshold
      doc: 'timeseries: harmonic-mean temporal coherence of a coherent pixel, 0..1 (default 0.7).'
      type: float?
    seasonal:
      label: Seasonal
      doc: 'timeseries: seasonal terms of the trajectory: auto (annual when the series spans a year
        or more), none, annual, or semiannual (annual and semiannual); amplitude and phase COGs (default
        auto).'
      type: string?
    min_valid_fraction:
      label: Min valid fraction
      doc: 'timeseries: pixels valid on fewer dates than this fraction get no velocity (default 0.5).'
      type: float?
    allow_gaps:
      label: Allow gaps
      doc: 'timeseries: start a new segment where a crossover product is missing (else the job fails
        with exit 2): true or false (default false).'
      type: string?
    cube:
      label: Cube
      doc: 'timeseries: cube format: netcdf (timeseries.nc) or zarr (timeseries.zarr, Zarr v3) (default
        netcdf).'
      type: string?
    date_cogs:
      label: Date cogs
      doc: 'timeseries: also one COG per date: true or false (default false).'
      type: string?
    points:
      label: Points
      doc: 'timeseries: LON,LAT;LON,LAT... points whose series go to points.csv and points.png.'
      type: string?
    quicklooks:
      label: Quicklooks
      doc: 'subset: draw a quicklook PNG per granule: true or false (default true).'
      type: string?
    stac:
      label: STAC
      doc: false for no STAC catalog (catalog.json) of the outputs (default true).
      type: string?
    steps:
      label: Steps
      doc: 'timeseries: dates of steps (earthquakes, equipment changes) fitted as Heaviside terms;
        one step_YYYYMMDD.tif COG each, with its standard error.'
      type: string?
    postseismic:
      label: Postseismic
      doc: 'timeseries: post-seismic terms DATE:TAU[:log|exp] (TAU in days; log by default), comma-separated;
        one postseismic_YYYYMMDD.tif COG each.'
      type: string?
    deramp:
      label: Deramp
      doc: 'timeseries: remove a per-date plane (linear) or quadric (quadratic), fitted on the reference
        pixels, before the fit (default none).'
      type: string?
    mintpy:
      label: Mintpy
      doc: 'timeseries: true to also write MintPy''s timeseries.h5 and velocity.h5 per frame (default
        false).'
      type: string?
    vmin:
      label: Vmin
      doc: 'Low end of the maps'' colour range, in their units (displacement: m; velocity: mm/yr);
        alone: -vmin..vmin (default symmetric: the 98th percentile of |value| (quicklooks: ±0.1 m)).'
      type: float?
    vmax:
      label: Vmax
      doc: 'High end of the maps'' colour range, in their units; alone: -vmax..vmax. Arrows on the
        colour bar mark values beyond the range.'
      type: float?
  outputs:
    out:
      type: Directory
      outputSource: process/outputs_result
  steps:
    process:
      run: '#main'
      in:
        granule_list: granule_list
        granules: granules
        bbox: bbox
        aoi: aoi
        window: window
        start: start
        end: end
        frame: frame
        layers: layers
        mask: mask
        tolerated_failure_percentage: tolerated_failure_percentage
        workers: workers
        limit: limit
        access: access
        cmr_url: cmr_url
        cog_writer: cog_writer
        product: product
        corrections: corrections
        nan_policy: nan_policy
        reference_point: reference_point
        reference_method: reference_method
        coherence_threshold: coherence_threshold
        seasonal: seasonal
        min_valid_fraction: min_valid_fraction
        allow_gaps: allow_gaps
        cube: cube
        date_cogs: date_cogs
        points: points
        quicklooks: quicklooks
        stac: stac
        steps: steps
        postseismic: postseismic
        deramp: deramp
        mintpy: mintpy
        vmin: vmin
        vmax: vmax
      out:
      - outputs_result
- class: CommandLineTool
  id: main
  requirements:
    DockerRequirement:
      dockerPull: opera-disp-subset:0.2.0
    NetworkAccess:
      networkAccess: true
    ResourceRequirement:
      ramMin: 16384
      coresMin: 2
      outdirMax: 20480
  baseCommand: /app/opera-disp/run.sh
  successCodes:
  - 0
  inputs:
    granule_list:
      type: File?
      inputBinding:
        position: 1
        prefix: --granule_list
    granules:
      type: string?
      inputBinding:
        position: 2
        prefix: --granules
    bbox:
      type: string?
      inputBinding:
        position: 3
        prefix: --bbox
    aoi:
      type: string?
      inputBinding:
        position: 4
        prefix: --aoi
    window:
      type: string?
      inputBinding:
        position: 5
        prefix: --window
    start:
      type: string?
      inputBinding:
        position: 6
        prefix: --start
    end:
      type: string?
      inputBinding:
        position: 7
        prefix: --end
    frame:
      type: int?
      inputBinding:
        position: 8
        prefix: --frame
    layers:
      type: string?
      default: displacement
      inputBinding:
        position: 9
        prefix: --layers
    mask:
      type: string?
      default: recommended
      inputBinding:
        position: 10
        prefix: --mask
    tolerated_failure_percentage:
      type: float?
      default: 0.0
      inputBinding:
        position: 11
        prefix: --tolerated_failure_percentage
    workers:
      type: int?
      default: 2
      inputBinding:
        position: 12
        prefix: --workers
    limit:
      type: int?
      inputBinding:
        position: 13
        prefix: --limit
    access:
      type: string?
      default: auto
      inputBinding:
        position: 14
        prefix: --access
    cmr_url:
      type: string?
      inputBinding:
        position: 15
        prefix: --cmr_url
    cog_writer:
      type: string?
      inputBinding:
        position: 16
        prefix: --cog_writer
    product:
      type: string?
      inputBinding:
        position: 17
        prefix: --product
    corrections:
      type: string?
      inputBinding:
        position: 18
        prefix: --corrections
    nan_policy:
      type: string?
      inputBinding:
        position: 19
        prefix: --nan_policy
    reference_point:
      type: string?
      inputBinding:
        position: 20
        prefix: --reference_point
    reference_method:
      type: string?
      inputBinding:
        position: 21
        prefix: --reference_method
    coherence_threshold:
      type: float?
      inputBinding:
        position: 22
        prefix: --coherence_threshold
    seasonal:
      type: string?
      inputBinding:
        position: 23
        prefix: --seasonal
    min_valid_fraction:
      type: float?
      inputBinding:
        position: 24
        prefix: --min_valid_fraction
    allow_gaps:
      type: string?
      inputBinding:
        position: 25
        prefix: --allow_gaps
    cube:
      type: string?
      inputBinding:
        position: 26
        prefix: --cube
    date_cogs:
      type: string?
      inputBinding:
        position: 27
        prefix: --date_cogs
    points:
      type: string?
      inputBinding:
        position: 28
        prefix: --points
    quicklooks:
      type: string?
      inputBinding:
        position: 29
        prefix: --quicklooks
    stac:
      type: string?
      inputBinding:
        position: 30
        prefix: --stac
    steps:
      type: string?
      inputBinding:
        position: 31
        prefix: --steps
    postseismic:
      type: string?
      inputBinding:
        position: 32
        prefix: --postseismic
    deramp:
      type: string?
      inputBinding:
        position: 33
        prefix: --deramp
    mintpy:
      type: string?
      inputBinding:
        position: 34
        prefix: --mintpy
    vmin:
      type: float?
      inputBinding:
        position: 35
        prefix: --vmin
    vmax:
      type: float?
      inputBinding:
        position: 36
        prefix: --vmax
  outputs:
    outputs_result:
      type: Directory
      outputBinding:
        glob: ./output*
