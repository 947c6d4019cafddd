"""The readable diff of two revisions: one line per change, in an editor's words."""

from newsletter.content.diff import describe


def snap(**overrides) -> dict:
    data = {"title": "A vs B", "dek": "Which?", "published": "2026-11-24T09:00:00+00:00", "category": "Dev",
            "checked_at": "2026-11-24T09:00:00+00:00", "unpublished_at": None,
            "tools": [{"slug": "a", "name": "A", "entry_price": "Free", "tagline": "t"},
                      {"slug": "b", "name": "B", "entry_price": "Free", "tagline": "t"}],
            "reviews": [{"tool": "a", "lens": "thesis", "reviewer": "Ada", "verdict": "pass", "quote": "q"}]}
    data.update(overrides)
    return data


def test_each_kind_of_change_reads_as_one_line():
    before = snap()
    after = snap(title="A vs C", checked_at="2026-12-01T10:30:00+00:00",
                 tools=[{"slug": "c", "name": "C", "entry_price": "$5", "tagline": "t"},
                        {"slug": "a", "name": "A", "entry_price": "$9/month", "tagline": "t"}],
                 reviews=[{"tool": "a", "lens": "thesis", "reviewer": "Ada", "verdict": "ship", "quote": "q " * 80},
                          {"tool": "c", "lens": "buyer", "reviewer": "Bo", "verdict": "pass", "quote": "q"}])
    lines = describe(before, after)
    assert lines[:2] == ["title: A vs B → A vs C", "checked: 2026-11-24 09:00 UTC → 2026-12-01 10:30 UTC"]
    assert {"Tool C added", "Tool B removed", "A: entry price Free → $9/month",
            "Review Ada/thesis on A: verdict pass → ship", "Review Bo/buyer on C added: pass"} <= set(lines)
    assert any(line.startswith("Review Ada/thesis on A: quote q → q q q") and line.endswith("…") for line in lines)
    order = snap(tools=list(reversed(before["tools"])))
    assert describe(before, order) == ["tool order: a, b → b, a"]
    assert describe(before, snap(reviews=[])) == ["Review Ada/thesis on A removed (was pass)"]
    assert describe(before, before) == ["no visible change"]
    assert describe(None, before) == ["created: A vs B (A, B; 1 review)"]
