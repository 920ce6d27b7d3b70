"""Plain-text reports for the terminal: ``inspect`` and ``layout``."""

from __future__ import annotations

from typing import Any


def inspect_text(doc: dict[str, Any]) -> str:
    """The ``inspect`` report of :func:`opera_disp.hdf5.info.inspect_granule`'s document."""
    out: list[str] = []
    out.append(doc["name"])
    out.append(f"  dimensions  {', '.join(f'{k}: {v}' for k, v in doc['dimensions'].items())}")
    out.append(f"  crs         {doc['crs']}, {doc['pixel_size']} m pixels, shape {doc['shape']}")
    out.append(f"  bounds      {doc['bounds']} (projected)")
    out.append(f"  lon/lat     {doc['lonlat_bounds']}")
    out.append(f"  dates       {doc['reference_datetime']} -> {doc['secondary_datetime']}")
    for k, v in doc["identification"].items():
        out.append(f"  {k:<27s} {v}")
    for k, v in doc["recommended_mask"].items():
        out.append(f"  mask {k:<22s} {v}")
    out.append(f"  groups      {', '.join(doc['groups'])}")
    out.append("  variables")
    for v in doc["variables"]:
        out.append(f"    {v['name']:<32s} {v['dtype']:<8s} {v['shape']!s:<14s} "
              f"units={v['units'] or '-':<9s} fill={v['fill'] if v['fill'] is not None else '-'}")
    out.append(f"  ({doc['requests']} request(s) in {doc['round_trips']} round trip(s), "
               f"{doc['bytes_read']} bytes read)")
    return "\n".join(out)


def layout_text(doc: dict[str, Any]) -> str:
    """The ``layout`` report of :func:`opera_disp.hdf5.info.layout`'s document."""
    out: list[str] = []
    out.append(doc["name"])
    out.append(f"  file-space strategy {doc['file_space_strategy']}, "
               f"page size {doc['page_size']} B")
    for k in ("metadata_bytes", "raw_data_bytes", "free_space_bytes", "unaccounted_bytes",
              "total_bytes"):
        out.append(f"  {k.replace('_bytes', '').replace('_', ' '):<12s} {doc[k]:>14,d} B")
    out.append(f"  {'dataset':<36s} {'dtype':<8s} {'shape':<14s} {'chunks':<11s} "
          f"{'filters':<20s} {'stored':>12s} {'ratio':>6s} {'chunks#':>7s}")
    for name, d in doc["datasets"].items():
        if not d["chunks"]:
            continue
        filt = "+".join(f["name"] + (str(f["level"]) if "level" in f else "")
                        for f in d["filters"])
        out.append(f"  {name:<36s} {d['dtype']:<8s} {d['shape']!s:<14s} {d['chunks']!s:<11s} "
              f"{filt:<20s} {d['stored_bytes']:>12,d} {d['compression_ratio'] or 0:>6.2f} "
              f"{d['n_chunks']:>7d}")
    rec = doc["recommendations"]
    out.append(f"  advice: {rec['windows']}; page_buf_size >= {rec['page_buf_size']} B")
    for name, a in rec["per_layer"].items():
        if "/" not in name:
            out.append(f"    {name:<34s} read {a['read_chunk']}, dask chunks {a['dask_chunks']} "
                  f"({a['task_bytes'] / 1e6:.1f} MB per task)")
    return "\n".join(out)
