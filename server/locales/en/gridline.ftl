# Gridline's English messages. Keys match zh-CN/gridline.ftl one for one: `error-*` are named
# by the stable error codes, the rest are names people read (case states, sources, roles,
# export headers).

## Error messages (the API's `message`; the `code` never changes)

error-invalid_request = Invalid request: a parameter is missing or has a value that is not allowed.
error-invalid_request-field = Invalid request: the value of “{ $path }” is not allowed.
error-malformed_body = The body could not be read: send JSON with Content-Type: application/json.
error-payload_too_large = The request body is larger than this endpoint accepts.
error-not_found = Not found: no such route or resource, or one you may not see.
error-method_not_allowed = This route does not take that method.
error-unauthenticated = Not signed in, or the sign-in has expired: sign in again.
error-invalid_credentials = Wrong user name or password.
error-invalid_refresh_token = The refresh token is invalid, expired, revoked or already used: sign in again.
error-device_revoked = This device is revoked or not enrolled for this user.
error-forbidden = Not allowed: your role or the zones you answer for do not permit this.
error-conflict = This conflicts with the current data (it already exists, or its state changed).
error-stale_version = Someone changed this since you read it: reload and try again.
error-invalid_transition = The case's current state does not allow this step.
error-rate_limited = Too many requests or failed sign-ins: try again later.
error-unsupported_protocol = The client's sync protocol version is not supported: update the app.
error-sequence_gap = A gap in the sync sequence: resend from the number the server gives.
error-sequence_behind = The server's sync sequence is behind the phone's (restored from a backup?): resend from the number given.
error-bad_signature = An operation's signature does not verify.
error-broken_chain = An operation's chain does not verify: it does not carry the hash of the one before.
error-unsupported_operation = The server does not know this operation type or version.
error-id_reused = This id is already taken by a record with other content.
error-out_of_scope = The operation refers to data outside the zones you answer for.
error-reset_required = The sync cursor is unknown or expired: sync again from the start.
error-import_failed = The import file has errors and nothing was imported: see the errors by row.
error-unavailable = The service is unavailable for a moment (database or storage): retry later.
error-internal = Internal server error: retry later or tell an administrator.
error-evidence_locked = An approved deduction locks this case: its classification and evidence cannot change (a correction is a ledger reversal).
error-case_not_found = The case does not exist, or you may not see it.
error-case_closed = The case is finished (closed, withdrawn, not filed or a duplicate) and takes no edits.
error-hash_mismatch = The upload does not hash to the SHA-256 it was declared with; nothing was kept.
error-unsupported_media = Not a photo type the server accepts (JPEG, PNG, WebP, HEIC).
error-photo_too_large = The photo file is larger than the server accepts.
error-image_too_large = The image has more pixels than the server decodes.
error-truncated_image = The image is incomplete (an interrupted copy or upload).
error-corrupt_image = The image data is damaged and cannot be decoded.
error-photo_not_declared = No case in your zones declares this photo.
error-upload_offset_mismatch = The upload offset is not where the server stands: ask for it and resume.
error-checksum_mismatch = The chunk's checksum does not match its bytes; the chunk was not kept.
error-upload_expired = The unfinished upload expired: start a new one.
error-unsupported_tus_version = This tus version is not supported (1.0.0 is).
error-unsupported_content_type = This endpoint does not take that Content-Type.
error-unsupported_checksum_algorithm = That checksum algorithm is not supported.
error-link_expired = The photo link is invalid or expired: ask for a new one.
error-evidence_incomplete = The evidence is incomplete: at least one photo, and every declared photo received and verified.
error-period_closed = The assessment period is closed and takes no new ledger entries (a correction posts in the open period).
error-proposal_id_reused = This proposal id is already taken by a proposal with other content.
error-proposal_pending = The case already has a deduction proposal waiting for a decision: decide that one first.
error-case_already_deducted = The case already has a deduction that is not reversed: reverse that entry first.
error-case_not_filed = The case is not filed (or was not filed, a duplicate or withdrawn): no deduction on it.
error-case_not_verified = A report from the public costs points only after an inspector's on-site visit found it, with a photo.
error-self_approval = Four eyes: whoever proposed a deduction cannot approve it.
error-period_not_ended = The period has not ended: only an administrator closes it early.
error-evidence_not_viewed = Open every evidence photo (the original or its preview) before approving.
error-notice_not_found = This notice is not in your inbox.
error-period_proposals_pending = The period still has deduction proposals waiting: decide them first, or in the close.

## Case states

state-reported = Reported
state-filed = Filed
state-not_filed = Not filed
state-duplicate = Duplicate
state-dispatched = Dispatched
state-in_progress = In progress
state-pending_verification = Awaiting verification
state-closed = Closed
state-withdrawn = Withdrawn

## Severities

severity-low = Low
severity-medium = Medium
severity-high = High

## Sources of a deduction

source-inspection = Inspection
source-media = Media exposure
source-leader_criticism = Leader's criticism
source-public_complaint = Public complaint
source-hotline = Hotline call
source-public_report = Public report
source-department_transfer = Department transfer
source-leader_instruction = Leader's instruction

## Roles

role-admin = Administrator
role-supervisor = Supervisor
role-inspector = Inspector
role-zone_chief = Zone chief
role-road_chief = Road chief
role-section_chief = Section chief
role-squad_member = Squad member
role-hotline_operator = Hotline operator

## Ledger entry kinds

entry-deduction = Deduction
entry-reversal = Reversal

## Work categories

work-environmental_sanitation = Environmental sanitation
work-greening = Greening
work-municipal_facilities = Municipal facilities
work-city_order = City order
work-environmental_protection = Environmental protection

## Yes and no

yes = Yes
no = No

## Export headers

col-seq = No.
col-id = Id
col-kind = Kind
col-zone = Zone code
col-zone_name = Zone
col-period = Period
col-rule = Rule code
col-rule_text = Rule
col-source = Source code
col-source_name = Source
col-work_category = Work category
col-raw_points = Raw points
col-coefficient = Coefficient
col-weighted_points = Weighted points
col-approved_by = Approved by
col-proposed_by = Proposed by
col-approved_at = Approved at
col-found_at = Found at
col-case_id = Case id
col-case_description = Case description
col-note = Note
col-evidence = Evidence photo hashes
col-reverses_id = Reverses entry
col-reason = Reason
col-hash = Entry hash
col-zone_chief = Zone chief
col-road_chief = Road chief
col-section_chief = Section chief
col-rank = Rank
col-score = Score
col-deductions = Deductions
col-entries = Entries
col-reversals = Reversals
col-cases_found = Cases found
col-filed = Filed
col-closed = Closed
col-closed_on_time = Closed on time
col-rework = Rework
col-overdue = Overdue
col-callbacks = Callers reached by callback
col-satisfied = Satisfied callers
col-public_reports = Reports from the public
col-responded_in_time = Answered within a day
col-inspections_due = Planned inspections due
col-inspections_on_time = Planned inspections on time
col-items_failed = Checklist items failed
col-formula_version = Formula version
col-state = State code
col-state_name = State
col-category = Category code
col-category_name = Category
col-severity = Severity code
col-severity_name = Severity
col-description = Description
col-lat = Latitude
col-lon = Longitude
col-captured_at = Captured at
col-received_at = Received at
col-deadline = Deadline
col-version = Version
col-locked = Locked
col-flags = Integrity flags

## The period report

report-title = City management assessment report, period { $period }
report-subtitle = Made { $at } ({ $tz }). Score = 100 − the sum of weighted points; weighted points = raw points × the zone's difficulty coefficient.
report-ranking = 1. Ranking of the zones
report-deductions = 2. Deductions by zone
report-zone = { $zone } ({ $code }): { $count } entries, { $points } points in all
report-none = No deductions this period.
report-signoff = 3. Ledger sign-off
report-signoff-text = Made from the first { $size } entries of the ledger, whose checkpoint root hash is { $root }, signed by server key { $key } at { $at }. Check it with gridline ledger verify.
report-no-checkpoint = The ledger has no checkpoint yet.
col-thumbnail = Evidence photo

## The console

console-brand = Gridline city inspection
console-nav = Main navigation
console-nav-overview = Overview
console-nav-queue = Review queue
console-skip = Skip to the content
console-language-name = English
console-sign-in = Sign in
console-sign-out = Sign out
console-username = User name
console-password = Password
console-not-for-you = The console is for the assessment office and the accountable chiefs; inspectors and squad members use the phone app.
console-csrf = Where this request came from could not be confirmed (the page may be stale); nothing was done. Reload the page and try again.
console-session-over = Your sign-in has expired. Sign in again in a new tab: what you typed on this page stays.
console-error = Something went wrong
console-back = Back to the console
console-overview-title = Overview
console-awaiting = Cases awaiting review
console-incomplete = Incomplete evidence
console-flagged = With integrity flags
console-overdue = Overdue
console-overdue-filter = Overdue
console-ranking-title = Ranking this period
console-no-ranking = No period is running now, or you may not see its ranking.
console-queue-title = Review queue
console-waiting = Waiting (reported, awaiting verification)
console-any = Any
console-evidence = Evidence
console-evidence-complete = Evidence complete
console-evidence-no-photo = No photo
console-evidence-incomplete = Evidence incomplete
console-flagged-only = Flagged only
console-unflagged-only = Unflagged only
console-apply = Filter
console-keyboard-hint = Keyboard: j/k to move, Enter to open, f to file, r to give a reason to reject, d to mark a duplicate of another case on this page, x to select for a bulk action.
console-empty-queue = No case matches.
console-bulk-action = Bulk action
console-bulk-apply = Apply to the selected cases
console-bulk-done = { $done } done, { $refused } refused.
console-reason = Reason
console-reason-for-reject = Reason to reject
console-select = Select
console-select-case = Select case: { $case }
console-photos = Photos
console-photo-alt = { $role } photo
console-role-before = Before
console-role-after = After
console-role-intake = Came with the report
console-role-verification = On-site verification
console-actions = Actions
console-next-page = Next page
console-back-to-queue = Back to the queue
console-facts = The case
console-reporter = Reported by
console-position = Position (WGS-84)
console-asset = Asset code
console-assignees = Dispatched to
console-no-actions = You have nothing to do on a case in this state.
console-duplicate-of = Id of the original case
console-not-verified = not verified
console-deduction = Deduction
console-no-rule = No rule of the rulebook applies to this case.
console-propose = Propose a deduction
console-deduction-pending = Deduction waiting for a decision
console-consequence = Consequence (raw points × coefficient = weighted points)
console-chain = Accountable chain (on duty when found)
console-score-rank = Zone score (rank): before → after
console-approve = Approve the deduction
console-reject-deduction = Reject the proposal
console-deducted = Approved into the ledger
console-nav-ledger = Ledger
console-nav-periods = Periods
console-ledger-title = Deduction ledger
console-chain-ok = The ledger's hash chain verifies: { $count } entries, all intact.
console-chain-broken = The ledger's hash chain breaks after entry { $count }: look into it now!
console-export-csv = Export CSV
console-export-xlsx = Export Excel
console-no-entries = No ledger entries.
console-reversal-cause = Why it is reversed
console-cause-correction = A mistake corrected
console-cause-appeal = Appeal upheld
console-reverse = Reverse
console-reversed = Reversed
console-periods-title = Assessment periods
console-span = From – to
console-close-checks = Before closing
console-closed = Closed
console-open = Open
console-check-ended = The period has ended
console-check-not-ended = The period has not ended (only an admin closes it early)
console-check-no-pending = No deduction proposal is waiting
console-check-pending = { $count } deduction proposals are still waiting
console-close = Close and publish the ranking
console-close-early = Close early
console-ranking-of = Ranking of
console-ranking-csv = Ranking CSV
console-ranking-xlsx = Ranking Excel
console-report = Period report (Excel)
console-nav-map = Map
console-map-title = Zones and open cases
console-map-empty = No zone to show.
console-map-open = Being handled
console-map-overdue = Overdue
console-map-count = { $count } open cases; a marker opens its case.
console-map-truncated = Only the { $count } most recently received are drawn; filter the queue to see the rest.
console-map-case = Where
console-claimed = Reported position
console-exif-position = Where the photo was taken (EXIF)
console-exif-distance = The photo was taken { $metres } m from the reported position
console-nav-decisions = Decisions
console-decisions-title = Deduction proposals waiting for a decision
console-no-pending = No proposal is waiting for a decision.
console-open-case = Open the case
console-direct-title = A deduction with no case (media exposure, a leader's criticism, a public complaint)
console-direct-hint = Note the source and what happened; like any proposal it goes into the ledger only when approved (by another supervisor, under four eyes).
console-timeline = Timeline
console-conflicts = Conflicts
console-field = Field
console-server-value = Value on the server
console-incoming-value = Value from the phone
console-resolution = Resolution

## Transitions

action-file = File
action-reject = Reject
action-mark_duplicate = Mark as duplicate
action-withdraw = Withdraw
action-dispatch = Dispatch
action-start = Start work
action-report_rectified = Report rectified
action-close = Verify and close
action-return = Return for rework
action-reopen = Reopen

## Case events

event-created = Reported
event-edited = Edited
event-comment = Comment
event-transition = Transition
event-verification = Verified on site

## Integrity flags

flag-location_outside_zone = The reported position is outside the case's zone
flag-clock_skew = The phone's clock was far from the server's: its times may be wrong
flag-photo_reused = The same photo is used by another case too
flag-exif_time_mismatch = The photo was taken at another time than the case says
flag-exif_gps_mismatch = The photo was taken far from where the case says
flag-exif_gps_outside_zone = The photo was taken outside the case's zone
flag-photo_undecodable = The photo's data is damaged and cannot be shown (the original is kept)
flag-evidence_incomplete = Not every declared photo has arrived and been verified

## Console: overview by person, duplicates, administration
console-overdue-by-zone = Overdue by zone
console-overdue-by-person = Overdue by accountable person
console-nobody-rostered = No zone, road or section chief is rostered on these zones.
console-person = Person
console-role = Role
console-roles = Roles
console-zones = Zones
console-choose = Choose…
console-choose-original = Choose the original case…
console-no-originals = No case of the same zone and category came in within 30 days.
console-nav-admin = Administration
console-admin-users = Users
console-admin-devices = Devices
console-admin-roster = Roster
console-admin-zones = Zones and coefficients
console-admin-reference = Taxonomy and rulebooks
console-account = Account
console-display-name = Name
console-email = Email (for notices)
console-new-password = New password
console-set-password = Set password
console-save = Save
console-create = Create
console-new-user = New user
console-disable = Disable
console-disabled = Disabled
console-enable = Enable
console-device = Device
console-enrolled = Enrolled
console-revoke = Revoke
console-revoked = Revoked
console-no-devices = No device has been enrolled.
console-roster-at = Roster at
console-roster-history = Whole history
console-roster-all = Every assignment there has been, ended ones included.
console-roster-valid-at = Assignments in force at { $at }.
console-valid-from = From
console-valid-to = Until
console-current = Current
console-every-zone = Every zone
console-reassign = Reassign
console-end-assignment = End
console-new-assignment = New assignment
console-open-assignment = Assign
console-code = Code
console-coefficient-in = Coefficient, { $period }
console-zones-hint = Boundaries and names are published through the API (POST /v1/zones, PUT /v1/zones/{"{"}id{"}"}). A coefficient applies to deductions approved from now on; entries keep the one they were weighted with.
console-no-open-period = No period is open: coefficients are set per open period.
console-reference-hint = A new rulebook version is written below, from the one in force (or through the API, POST /v1/rulebooks); it takes effect from its date and never changes entries already made. The taxonomy is edited below too.
console-rulebooks = Rulebooks
console-rulebook-new = Publish a new version
console-rulebook-new-hint = Filled with the version in force. Change a rule in its row, clear its code to drop it, fill an empty row to add one. The new version applies to findings from the time below; entries already in the ledger keep citing the version they were made under.
console-rulebook-name = Name
console-rulebook-from = In force from
console-rulebook-any-category = None chosen: any category
console-rulebook-publish = Publish the new version
console-effective-from = in force from { $at }
console-sources = Sources
console-taxonomy = Taxonomy
console-taxonomy-hint = Each entry's names, work category and time limit to rectify (hours, working hours or working days; empty: the default) can be changed in its row; a new entry goes in an empty row (a 2-digit major code, or 4 digits; local additions use major 21). Entries are never removed: cases and rules refer to them.
console-calendar = Working-day calendar
console-calendar-hint = A working day runs from { $start } to { $end }; { $weekend } are days off. Time limits in working hours or days skip the days off and the holidays below, and count the make-up working days. A case's deadline is fixed when it is dispatched.
console-calendar-year = { $year }: { $days } days named
console-calendar-empty = No holiday or make-up working day for this year yet.
console-date = Date
console-calendar-kind = Kind
console-name = Name
console-calendar-holiday = Holiday (休)
console-calendar-workday = Make-up working day (班)
console-calendar-import = Import a year's calendar
console-calendar-format = Paste a CSV file: the header date,kind,name, then one day per line, kind being holiday (休) or workday (班). Each year in the file replaces that year's days; other years stay.
console-calendar-import-button = Import
console-weekday-monday = Monday
console-weekday-tuesday = Tuesday
console-weekday-wednesday = Wednesday
console-weekday-thursday = Thursday
console-weekday-friday = Friday
console-weekday-saturday = Saturday
console-weekday-sunday = Sunday
console-name-zh = Chinese name
console-name-en = English name
console-taxonomy-kind = Kind
console-kind-event = Event
console-kind-component = Component
console-time-limit = Time limit
console-time-limit-unit = Unit of the time limit
console-unit-hours = hours
console-unit-working_hours = working hours
console-unit-working_days = working days

## Console: the inbox of notices
console-nav-inbox = Inbox
console-inbox-title = Notices
console-inbox-unread = { $count } unread.
console-inbox-empty = No notices yet.
console-inbox-when = When
console-inbox-what = What
console-inbox-new = New
console-inbox-open = Open the case
console-inbox-mark-read = Mark as read
console-inbox-acknowledge = Acknowledge
console-inbox-acknowledged = Acknowledged at { $when }
notice-case-dispatched = Dispatched to you: { $category } in { $zone }, to be rectified by { $deadline }.
notice-case-returned = Returned for rework: { $category } in { $zone }, due { $deadline }.
notice-case-due_soon = Due soon: { $category } in { $zone } is to be rectified by { $deadline }.
notice-case-overdue = Overdue: { $category } in { $zone } was due by { $deadline } and is not rectified.
notice-deduction-approved = Deduction approved in { $zone }: rule { $rule }, { $points } points.
notice-deduction-rejected = Your proposed deduction (rule { $rule }) was rejected: { $reason }
notice-deduction-proposed = A deduction waits for your decision in { $zone }: rule { $rule }.
notice-deduction-reversed = A deduction in { $zone } was reversed (rule { $rule }): { $reason }
notice-period-closed = Period { $period } is closed and its ranking published.
notice-case-received = New report ({ $source }): { $category } in { $zone }, waiting to be filed.

## Taking reports in from outside the patrol
console-nav-intake = Take a report
console-intake-title = Take a report in
console-intake-lead = A hotline call, a public report, a transfer from another department, a press report or a leader's instruction becomes a case in the zone its place falls in, and runs the same workflow as an inspector's finding.
console-intake-report = The report
console-intake-ticket = Ticket number
console-intake-place = The place
console-intake-address = Address as told
console-intake-lat = Latitude
console-intake-lon = Longitude
console-intake-datum = Coordinates from
console-datum-gcj02 = A domestic map (GCJ-02)
console-datum-wgs84 = GPS (WGS-84)
console-datum-bd09 = Baidu Maps (BD-09)
console-intake-zone = Zone
console-intake-zone-auto = The zone the place is in
console-intake-place-help = Give the coordinates of the place, or the code of the asset the report is about; choose the zone only when the place is in none.
console-intake-map = The zones: click to place the report
console-intake-map-help = Click the map where the problem is: its coordinates fill in above.
console-intake-caller = The caller
console-intake-caller-name = Name
console-intake-caller-phone = Phone number
console-intake-caller-help = Kept apart from the case: only hotline operators see it in full, supervisors see it masked, and it is erased { $days } days after the call.
console-intake-submit = Take it in
console-intake-record = How it came in
console-intake-received = Received
console-intake-callers = Callers
console-intake-no-callers = Nobody left a name or number.
console-intake-erased = Erased after the retention period
console-intake-merged = From a merged duplicate
console-intake-callbacks = Callbacks
console-intake-outcome = What the caller said
console-intake-note = Note
console-intake-call-back = Record the callback
console-documents = Documents
console-documents-none = No document yet.
console-documents-add = Add a PDF (a leader's instruction, a press clipping)
console-documents-upload = Add the document
console-intake-duplicates = Possible duplicates
console-intake-distance = { $metres } m away
console-intake-same-asset = Same asset
console-verification-pending = Waits for an inspector's on-site verification before it can cost points
console-verification-done = Verified on site
callback-satisfied = Satisfied
callback-basically_satisfied = Basically satisfied
callback-dissatisfied = Dissatisfied
callback-unreachable = Not reached

## Email settings for notices (the inbox always receives every notice)
console-nav-settings = My settings
console-settings-title = Email notices
console-settings-intro = Your inbox in the console always receives every notice: it is the record of who was told. These settings decide only which notices are also emailed to you, and when.
console-settings-email = Mails go to { $email }.
console-settings-no-email = You have no email address, so nothing is mailed to you. An administrator can add one under Administration, Users.
console-settings-kind = Notice
console-settings-mode = Email
console-settings-follow = As my role: { $mode }
console-mode-immediately = Immediately
console-mode-digest = In the daily digest
console-mode-off = Off
console-settings-escalation = An escalation: it can go to the digest but cannot be turned off.
console-settings-digest-at = The daily digest is mailed at { $time } ({ $zone } time), only when something waits for it.
console-settings-quiet = Quiet hours
console-settings-quiet-on = Hold immediate mails during quiet hours
console-settings-quiet-hint = A mail that falls in them is sent when they end; it is not dropped. The hours may cross midnight, such as 22:00 to 07:00.
console-settings-quiet-start = From
console-settings-quiet-end = Until
console-settings-saved = Your settings are saved.
console-admin-notifications = Email defaults
console-roles-notify-intro = What the holders of each role are mailed for the kinds they have not chosen themselves. A person with several roles gets the most generous of them. The inbox receives every notice whatever is chosen here.
console-roles-notify-role = Roles
console-roles-notify-saved = The defaults for { $role } are saved.
notice-kind-case-dispatched = A case dispatched to me
notice-kind-case-returned = A rectification returned for rework
notice-kind-deduction-approved = A deduction approved
notice-kind-deduction-rejected = A proposed deduction rejected
notice-kind-deduction-proposed = A deduction waiting for a decision
notice-kind-deduction-reversed = A deduction reversed
notice-kind-period-closed = A period closed and its ranking published
notice-kind-case-due_soon = A case due soon (escalation)
notice-kind-case-overdue = A case overdue (escalation)
notice-kind-case-received = A new report from outside the patrol
notice-digest-subject = Daily digest of notices for { $day } ({ $count })
notice-digest-footer = Every notice is also in your inbox in the console. To change what is mailed to you, open My settings there.
