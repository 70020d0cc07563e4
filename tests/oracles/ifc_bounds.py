"""Per-element bounding boxes of an IFC model by IfcOpenShell, for cross-checking.

Usage: python3 ifc_bounds.py MODEL.ifc
Prints JSON: {"schema": ..., "counts": {class: n}, "bounds": {GlobalId: [minx, miny,
minz, maxx, maxy, maxz]}, "psets": {GlobalId: {set: {property: value}}}} in metres, in the model's world frame (placements
applied, openings subtracted as IfcOpenShell does by default).
"""
import json
import multiprocessing
import sys

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element


def main(path):
    model = ifcopenshell.open(path)
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    bounds = {}
    iterator = ifcopenshell.geom.iterator(settings, model, max(1, multiprocessing.cpu_count()))
    if iterator.initialize():
        while True:
            shape = iterator.get()
            v = shape.geometry.verts
            if v:
                xs, ys, zs = v[0::3], v[1::3], v[2::3]
                bounds[shape.guid] = [min(xs), min(ys), min(zs), max(xs), max(ys), max(zs)]
            if not iterator.next():
                break
    counts = {}
    psets = {}
    for product in model.by_type("IfcProduct"):
        counts[product.is_a()] = counts.get(product.is_a(), 0) + 1
        sets = ifcopenshell.util.element.get_psets(product)
        psets[product.GlobalId] = {
            name: {k: v for k, v in values.items() if k != "id"} for name, values in sets.items()
        }
    print(json.dumps({"schema": model.schema, "counts": counts, "bounds": bounds, "psets": psets}, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
