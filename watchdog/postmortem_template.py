"""The post-mortem template's sections a person writes: left as prompts, never filled in.

Plain text (the procedure's template), kept apart from the code that fills the timeline.
"""

from __future__ import annotations

from typing import Final

HUMAN_SECTIONS: Final = """\
## Root Cause

[Detailed technical explanation of what went wrong]

## Contributing Factors

- [Factor 1]
- [Factor 2]
- [Factor 3]
"""

HUMAN_REVIEW: Final = """\
## What Went Well

- [Thing 1]
- [Thing 2]

## What Didn't Go Well

- [Thing 1]
- [Thing 2]

## Action Items

| Action | Owner | Due Date | Status |
|--------|-------|----------|--------|
| [Action 1] | [Name] | [Date] | [ ] |
| [Action 2] | [Name] | [Date] | [ ] |
| [Action 3] | [Name] | [Date] | [ ] |

## Lessons Learned

- [Lesson 1]
- [Lesson 2]
- [Lesson 3]

## Prevention

How we'll prevent this in the future:

1. [Prevention measure 1]
2. [Prevention measure 2]
3. [Prevention measure 3]
"""


# --------------------------------------------------------------------------- formatting
