"""The graph view: a layered left-to-right layout of a serialized DAG, drawn as SVG.

Pure functions, no Flask: ``layout_dag`` places tasks (and collapsed task groups) in layers by
longest path from the roots, orders each layer by barycentre sweeps while keeping the members
of a task group together, and routes edges through dummy points; ``render_svg`` turns the
layout into an SVG string whose nodes carry ``data-task-id`` and a ``state-<state>`` class, so
the page's script can recolour them when state events arrive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from typing import Any

NODE_W = 170
NODE_H = 36
LAYER_GAP = 80
ROW_GAP = 18
GROUP_PAD = 12
GROUP_HEADER = 18
MARGIN = 20
SWEEPS = 6

#: Ordered worst first: a collapsed group shows the first state any of its tasks has.
STATE_PRIORITY = ("failed", "upstream_failed", "up_for_retry", "running", "queued",
                  "up_for_reschedule", "scheduled", "removed", "skipped", "none", "success")


@dataclass
class GroupInfo:
    """A task group from the serialized tree."""

    group_id: str
    label: str
    tooltip: str
    ui_color: str
    parent: str | None
    depth: int
    task_ids: list[str] = field(default_factory=list)  # every task inside, nested included


@dataclass
class LayoutNode:
    """A box in the drawing: a task, a collapsed group, or a dummy point of a long edge."""

    node_id: str
    kind: str  # "task", "group" or "dummy"
    label: str
    layer: int = 0
    order: float = 0.0
    x: float = 0.0
    y: float = 0.0
    groups: tuple[str, ...] = ()  # enclosing expanded groups, outermost first
    task_ids: tuple[str, ...] = ()
    task_type: str = ""
    ui_color: str = "#fff"
    is_mapped: bool = False
    preds: list[str] = field(default_factory=list)  # nodes of the previous layer linked here


@dataclass
class LayoutEdge:
    """A visible dependency, with the points it passes through and its label."""

    source: str
    target: str
    label: str | None
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class GroupBox:
    group_id: str
    label: str
    tooltip: str
    x: float
    y: float
    w: float
    h: float
    depth: int


@dataclass
class Layout:
    nodes: dict[str, LayoutNode]
    edges: list[LayoutEdge]
    groups: list[GroupBox]
    all_groups: dict[str, GroupInfo]
    width: float
    height: float


def parse_groups(tree: Mapping[str, Any]) -> tuple[dict[str, GroupInfo], dict[str, list[str]]]:
    """Groups by id and, per task id, the chain of its groups (outermost first)."""
    groups: dict[str, GroupInfo] = {}
    chains: dict[str, list[str]] = {}

    def walk(node: Mapping[str, Any], chain: list[str]) -> list[str]:
        inside: list[str] = []
        for child in node.get("children", []):
            if isinstance(child, str):
                chains[child] = list(chain)
                inside.append(child)
            else:
                gid = child["group_id"]
                groups[gid] = GroupInfo(gid, child.get("label") or gid, child.get("tooltip") or "",
                                        child.get("ui_color") or "CornflowerBlue",
                                        chain[-1] if chain else None, len(chain))
                members = walk(child, chain + [gid])
                groups[gid].task_ids = members
                inside.extend(members)
        return inside

    walk(tree, [])
    return groups, chains


def _visible_id(task_id: str, chain: list[str], collapsed: set[str]) -> tuple[str, list[str]]:
    """The node a task is drawn as, and the expanded groups that enclose that node."""
    for i, gid in enumerate(chain):
        if gid in collapsed:
            return "group:" + gid, chain[:i]
    return task_id, chain


def layout_dag(dag: Any, collapsed: Iterable[str] = ()) -> Layout:
    """Place the tasks of a serialized DAG; groups in ``collapsed`` become single nodes."""
    collapsed = set(collapsed)
    groups, chains = parse_groups(dag.task_group_json)
    collapsed &= set(groups)
    nodes: dict[str, LayoutNode] = {}
    of_task: dict[str, str] = {}
    for task_id, task in dag.task_dict.items():
        vid, enclosing = _visible_id(task_id, chains.get(task_id, []), collapsed)
        of_task[task_id] = vid
        if vid in nodes:
            nodes[vid].task_ids += (task_id,)
            continue
        if vid.startswith("group:"):
            info = groups[vid[6:]]
            nodes[vid] = LayoutNode(vid, "group", info.label, groups=tuple(enclosing),
                                    task_ids=(task_id,), ui_color=info.ui_color)
        else:
            nodes[vid] = LayoutNode(vid, "task", task.label or task_id, groups=tuple(enclosing),
                                    task_ids=(task_id,), task_type=task.task_type,
                                    ui_color=task.ui_color, is_mapped=task.is_mapped)
    labels: dict[tuple[str, str], str | None] = {}
    succ: dict[str, list[str]] = defaultdict(list)
    for task_id in sorted(dag.task_dict):
        task = dag.task_dict[task_id]
        for down in sorted(task.downstream_task_ids):
            if down not in of_task:
                continue
            a, b = of_task[task_id], of_task[down]
            if a == b:
                continue
            label = (dag.edge_info.get((task_id, down)) or {}).get("label")
            if (a, b) not in labels:
                succ[a].append(b)
                labels[(a, b)] = label
            elif label and not labels[(a, b)]:
                labels[(a, b)] = label
    _assign_layers(nodes, succ)
    edges, chains_of_edge = _split_long_edges(nodes, succ, labels)
    _wire_predecessors(nodes, chains_of_edge)
    layers = _order_layers(nodes, chains_of_edge)
    _assign_coordinates(nodes, layers)
    for edge, path in zip(edges, chains_of_edge):
        edge.points = _route(nodes, path)
    boxes = _group_boxes(nodes, groups)
    max_x = max([n.x + NODE_W for n in nodes.values()] + [b.x + b.w for b in boxes] + [0])
    max_y = max([n.y + NODE_H for n in nodes.values()] + [b.y + b.h for b in boxes] + [0])
    return Layout(nodes, edges, boxes, groups, max_x + MARGIN, max_y + MARGIN)


def _assign_layers(nodes: dict[str, LayoutNode], succ: Mapping[str, list[str]]) -> None:
    """Longest path from the roots (Kahn's order), so every edge points to a later layer."""
    indeg = {n: 0 for n in nodes}
    for downs in succ.values():
        for b in downs:
            indeg[b] += 1
    ready = sorted(n for n, d in indeg.items() if d == 0)
    while ready:
        current = ready.pop(0)
        for b in succ.get(current, []):
            nodes[b].layer = max(nodes[b].layer, nodes[current].layer + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    # A collapsed group between relatives of its own tasks can make a cycle of visible
    # nodes; the nodes on it keep the layer they had rather than failing the page.


def _split_long_edges(nodes, succ, labels):
    edges: list[LayoutEdge] = []
    paths: list[list[str]] = []
    for a in sorted(succ):
        for b in succ[a]:
            path = [a]
            la, lb = nodes[a].layer, nodes[b].layer
            for layer in range(la + 1, lb):
                dummy = f"dummy:{a}->{b}:{layer}"
                nodes[dummy] = LayoutNode(dummy, "dummy", "", layer=layer,
                                          groups=_common_prefix(nodes[a].groups, nodes[b].groups))
                path.append(dummy)
            path.append(b)
            edges.append(LayoutEdge(a, b, labels.get((a, b))))
            paths.append(path)
    return edges, paths


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for x, y in zip(a, b):
        if x != y:
            break
        out.append(x)
    return tuple(out)


def _order_layers(nodes: dict[str, LayoutNode], paths: list[list[str]]) -> list[list[str]]:
    """Barycentre ordering, sweeping down and up; members of a group stay contiguous."""
    count = max((n.layer for n in nodes.values()), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(count)]
    for node_id in sorted(nodes, key=lambda n: (nodes[n].groups, n)):
        layers[nodes[node_id].layer].append(node_id)
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        for a, b in pairwise(path):
            succs[a].append(b)
            preds[b].append(a)
    for layer in layers:
        _set_order(nodes, layer)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, count) if down else range(count - 2, -1, -1)
        for i in indices:
            neighbours = preds if down else succs
            bary: dict[str, float] = {}
            for node_id in layers[i]:
                linked = neighbours.get(node_id, [])
                if linked:
                    bary[node_id] = sum(nodes[n].order for n in linked) / len(linked)
                else:
                    bary[node_id] = nodes[node_id].order
            layers[i] = _grouped_sort(layers[i], bary, nodes)
            _set_order(nodes, layers[i])
    return layers


def _set_order(nodes: dict[str, LayoutNode], layer: list[str]) -> None:
    for index, node_id in enumerate(layer):
        nodes[node_id].order = float(index)


def _grouped_sort(layer: list[str], bary: Mapping[str, float],
                  nodes: Mapping[str, LayoutNode]) -> list[str]:
    """Sort by barycentre, a group's members as one block placed at their mean barycentre."""

    def build(items: list[str], depth: int) -> list[tuple[float, list[str]]]:
        blocks: dict[str, list[str]] = {}
        out: list[tuple[float, list[str]]] = []
        for node_id in items:
            chain = nodes[node_id].groups
            if len(chain) > depth:
                blocks.setdefault(chain[depth], []).append(node_id)
            else:
                out.append((bary[node_id], [node_id]))
        for members in blocks.values():
            inner = build(members, depth + 1)
            flat = [n for _, ns in inner for n in ns]
            out.append((sum(bary[n] for n in flat) / len(flat), flat))
        out.sort(key=lambda item: item[0])
        return out

    return [n for _, ns in build(layer, 0) for n in ns]


def _boundaries(a: LayoutNode, b: LayoutNode) -> int:
    shared = len(_common_prefix(a.groups, b.groups))
    return (len(a.groups) - shared) + (len(b.groups) - shared)


def _assign_coordinates(nodes: dict[str, LayoutNode], layers: list[list[str]]) -> None:
    """x from the layer; y near the mean of the predecessors, keeping order and spacing."""
    step = NODE_H + ROW_GAP
    placed_y: dict[str, float] = {}
    for index, layer in enumerate(layers):
        previous: LayoutNode | None = None
        for node_id in layer:
            node = nodes[node_id]
            node.x = MARGIN + index * (NODE_W + LAYER_GAP) + GROUP_PAD * len(node.groups)
            minimum = MARGIN + (GROUP_HEADER + GROUP_PAD) * len(node.groups)
            if previous is not None:
                gap = _boundaries(previous, node) * (GROUP_PAD + GROUP_HEADER // 2)
                minimum = max(minimum, previous.y + step + gap)
            wanted = _preferred_y(node_id, nodes, placed_y)
            node.y = max(minimum, wanted if wanted is not None else minimum)
            placed_y[node_id] = node.y
            previous = node


def _preferred_y(node_id: str, nodes: Mapping[str, LayoutNode],
                 placed: Mapping[str, float]) -> float | None:
    """Mean y of the already placed nodes linked to this one from the previous layer."""
    node = nodes[node_id]
    linked = [placed[p] for p in node.preds if p in placed]
    return sum(linked) / len(linked) if linked else None


def _route(nodes: Mapping[str, LayoutNode], path: list[str]) -> list[tuple[float, float]]:
    first, last = nodes[path[0]], nodes[path[-1]]
    points = [(first.x + NODE_W, first.y + NODE_H / 2)]
    for dummy in path[1:-1]:
        d = nodes[dummy]
        points.append((d.x + NODE_W / 2, d.y + NODE_H / 2))
    points.append((last.x, last.y + NODE_H / 2))
    return points


def _group_boxes(nodes: Mapping[str, LayoutNode], groups: Mapping[str, GroupInfo]) -> list[GroupBox]:
    members: dict[str, list[LayoutNode]] = defaultdict(list)
    for node in nodes.values():
        if node.kind == "dummy":
            continue
        for gid in node.groups:
            members[gid].append(node)
    boxes = []
    for gid, inside in members.items():
        info = groups[gid]
        # Deeper groups inside this one are padded too: pad by the deepest member's nesting.
        extra = max(len(n.groups) for n in inside) - (info.depth + 1)
        pad = GROUP_PAD * (1 + extra)
        x0 = min(n.x for n in inside) - pad
        y0 = min(n.y for n in inside) - pad - GROUP_HEADER * (1 + extra)
        x1 = max(n.x + NODE_W for n in inside) + pad
        y1 = max(n.y + NODE_H for n in inside) + pad
        boxes.append(GroupBox(gid, info.label, info.tooltip, x0, y0, x1 - x0, y1 - y0, info.depth))
    boxes.sort(key=lambda b: b.depth)
    return boxes


def _wire_predecessors(nodes: dict[str, LayoutNode], paths: list[list[str]]) -> None:
    for path in paths:
        for a, b in pairwise(path):
            nodes[b].preds.append(a)


def aggregate_state(states: Iterable[str | None]) -> str:
    """The state a collapsed group shows: the worst of its tasks' states."""
    present = {s or "none" for s in states}
    if not present:
        return "none"
    if present <= {"success", "skipped"}:
        return "success" if "success" in present else "skipped"
    for state in STATE_PRIORITY:
        if state in present:
            return state
    return "none"


def _path_d(points: list[tuple[float, float]]) -> str:
    """A smooth path through the points (horizontal tangents at each point)."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        mid = (x + nx) / 2
        parts.append(f"C{mid:.1f},{y:.1f} {mid:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def render_svg(layout: Layout, states: Mapping[str, str | None], *,
               task_href: Mapping[str, str] | None = None,
               group_href: Mapping[str, str] | None = None,
               collapsed: Iterable[str] = ()) -> str:
    """The SVG of a layout, nodes coloured by ``states`` (task id -> state)."""
    task_href = task_href or {}
    group_href = group_href or {}
    collapsed = set(collapsed)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="dag-graph" '
            f'width="{layout.width:.0f}" height="{layout.height:.0f}" '
            f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" '
            f'aria-label="DAG graph">'),
           ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            'class="arrowhead"/></marker></defs>')]
    for box in layout.groups:
        href = group_href.get(box.group_id, "#")
        out.append(f'<g class="group-box" data-group-id="{escape(box.group_id)}">'
                   f'<title>{escape(box.tooltip or box.label)}</title>'
                   f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
                   f'height="{box.h:.1f}" rx="6"/>'
                   f'<a href="{escape(href)}" class="group-toggle" '
                   f'data-group-id="{escape(box.group_id)}">'
                   f'<text x="{box.x + 8:.1f}" y="{box.y + 14:.1f}">&#9662; '
                   f'{escape(box.label)}</text></a></g>')
    for edge in layout.edges:
        out.append(f'<g class="edge" data-source="{escape(edge.source)}" '
                   f'data-target="{escape(edge.target)}"><path d="{_path_d(edge.points)}" '
                   f'marker-end="url(#arrow)"/>')
        if edge.label:
            if len(edge.points) > 2:
                lx, ly = edge.points[len(edge.points) // 2]
            else:
                (ax, ay), (bx, by) = edge.points
                lx, ly = (ax + bx) / 2, (ay + by) / 2
            ly -= 4
            out.append(f'<text class="edge-label" x="{lx:.1f}" y="{ly:.1f}" '
                       f'text-anchor="middle">{escape(edge.label)}</text>')
        out.append("</g>")
    for node in sorted(layout.nodes.values(), key=lambda n: n.node_id):
        if node.kind == "dummy":
            continue
        if node.kind == "group":
            gid = node.node_id[6:]
            state = aggregate_state(states.get(t) for t in node.task_ids)
            href = group_href.get(gid, "#")
            out.append(f'<a href="{escape(href)}" class="group-toggle" '
                       f'data-group-id="{escape(gid)}">'
                       f'<g class="node group-node state-{escape(state)}" '
                       f'data-group-id="{escape(gid)}" '
                       f'data-task-ids="{escape(" ".join(node.task_ids))}">'
                       f'<title>{escape(node.label)}: {len(node.task_ids)} tasks '
                       f'(click to expand)</title>'
                       f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{NODE_W}" '
                       f'height="{NODE_H}" rx="8"/>'
                       f'<text x="{node.x + 10:.1f}" y="{node.y + 15:.1f}" class="label">'
                       f'&#9656; {escape(_clip(node.label, 20))}</text>'
                       f'<text x="{node.x + 10:.1f}" y="{node.y + 29:.1f}" class="sub">'
                       f'{len(node.task_ids)} tasks</text></g></a>')
            continue
        task_id = node.task_ids[0]
        state = states.get(task_id) or "none"
        href = task_href.get(task_id)
        label = node.label + (" [ ]" if node.is_mapped else "")
        body = (f'<g class="node task-node state-{escape(state)}" '
                f'data-task-id="{escape(task_id)}" data-state="{escape(state)}">'
                f'<title>{escape(task_id)} ({escape(node.task_type)}): {escape(state)}</title>'
                f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{NODE_W}" height="{NODE_H}" '
                f'rx="4"/>'
                f'<rect class="stripe" x="{node.x:.1f}" y="{node.y:.1f}" width="6" '
                f'height="{NODE_H}" fill="{escape(_safe_colour(node.ui_color))}"/>'
                f'<text x="{node.x + 12:.1f}" y="{node.y + 15:.1f}" class="label">'
                f'{escape(_clip(label, 22))}</text>'
                f'<text x="{node.x + 12:.1f}" y="{node.y + 29:.1f}" class="sub">'
                f'{escape(_clip(node.task_type, 24))}</text></g>')
        if href:
            body = f'<a href="{escape(href)}">{body}</a>'
        out.append(body)
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def _safe_colour(value: str) -> str:
    """A colour from the DAG file, reduced to characters that cannot break out of the fill
    attribute (a presentation attribute, not a style: the CSP allows no inline style)."""
    cleaned = "".join(c for c in value if c.isalnum() or c in "#(),. %")
    return cleaned or "#fff"


__all__ = [
    "GroupBox",
    "Layout",
    "LayoutEdge",
    "LayoutNode",
    "aggregate_state",
    "layout_dag",
    "parse_groups",
    "render_svg",
]
