# Gridline 的中文（简体）消息。键与 en/gridline.ftl 一一对应：`error-*` 以稳定的错误代码命名，
# 其余是人读的名称（案件状态、来源、角色、导出表头）。

## 错误消息（API 的 `message`，`code` 不变）

error-invalid_request = 请求无效：参数缺失或取值不符合要求。
error-invalid_request-field = 请求无效：字段“{ $path }”的取值不符合要求。
error-malformed_body = 请求体无法解析：需要 Content-Type 为 application/json 的 JSON 内容。
error-payload_too_large = 请求体过大，超出了此接口允许的大小。
error-not_found = 未找到：该地址或资源不存在，或您无权查看。
error-method_not_allowed = 此地址不支持该请求方法。
error-unauthenticated = 未登录或登录已失效，请重新登录。
error-invalid_credentials = 用户名或密码错误。
error-invalid_refresh_token = 刷新令牌无效、已过期、已撤销或已被使用，请重新登录。
error-device_revoked = 此设备已被撤销或未为该用户登记。
error-forbidden = 无权执行此操作：您的角色或所负责的片区不允许。
error-conflict = 操作与当前数据冲突（资源已存在或状态已改变）。
error-stale_version = 数据已被他人修改，您看到的版本已不是最新，请刷新后重试。
error-invalid_transition = 案件当前状态下不允许此流转操作。
error-rate_limited = 请求或登录失败次数过多，请稍后再试。
error-unsupported_protocol = 客户端的同步协议版本不受支持，请升级应用。
error-sequence_gap = 同步序号不连续：请从服务器指定的序号起重新发送。
error-sequence_behind = 服务器记录的同步序号落后于手机（例如从备份恢复），请从指定序号起重新发送。
error-bad_signature = 操作签名校验失败。
error-broken_chain = 操作链校验失败：与上一条操作的哈希不符。
error-unsupported_operation = 服务器不认识此操作类型或版本。
error-id_reused = 该编号已被内容不同的记录使用。
error-out_of_scope = 操作涉及您负责范围之外的数据。
error-reset_required = 同步游标未知或已过期，请重新完整同步。
error-import_failed = 导入文件有错误，未导入任何内容；请按行查看错误明细。
error-unavailable = 服务暂时不可用（数据库或存储），请稍后重试。
error-internal = 服务器内部错误，请稍后重试或联系管理员。
error-evidence_locked = 已批准的扣分锁定了此案件：分类和证据不能再修改，更正须通过台账冲销。
error-case_not_found = 案件不存在，或您无权查看。
error-case_closed = 案件已办结（结案、撤回、不予立案或重复），不能再修改。
error-hash_mismatch = 上传内容的 SHA-256 与声明不符，未保存任何内容。
error-unsupported_media = 不是服务器接受的照片格式（JPEG、PNG、WebP、HEIC）。
error-photo_too_large = 照片文件超过了服务器允许的大小。
error-image_too_large = 图片像素过多，服务器不予解码。
error-truncated_image = 图片不完整（复制或上传被中断）。
error-corrupt_image = 图片数据已损坏，无法解码。
error-photo_not_declared = 您负责范围内没有案件声明过此照片。
error-upload_offset_mismatch = 上传偏移量与服务器不一致，请查询进度后续传。
error-checksum_mismatch = 分片校验和与内容不符，该分片未保存。
error-upload_expired = 未完成的上传已过期，请重新上传。
error-unsupported_tus_version = 不支持此 tus 协议版本（需要 1.0.0）。
error-unsupported_content_type = 此接口不接受该 Content-Type。
error-unsupported_checksum_algorithm = 不支持该校验算法。
error-link_expired = 照片链接无效或已过期，请重新获取。
error-evidence_incomplete = 证据不完整：至少需要一张照片，且所有声明的照片均已收到并校验。
error-period_closed = 考核周期已关闭，不再接受新的台账记录（更正记入当前周期）。
error-proposal_id_reused = 该扣分建议编号已被内容不同的建议使用。
error-proposal_pending = 此案件已有待审批的扣分建议，请先处理。
error-case_already_deducted = 此案件已有未冲销的扣分，更正须先冲销该记录。
error-case_not_filed = 案件尚未立案（或不予立案、重复、已撤回），不能扣分。
error-case_not_verified = 群众来源的案件须经巡查员现场核实并拍照后方可扣分。
error-self_approval = 双人复核：提出扣分建议的人不能自己批准。
error-period_not_ended = 考核周期尚未结束，只有管理员可以提前关闭。
error-evidence_not_viewed = 批准前须逐一打开查看每张证据照片（原图或预览图）。
error-notice_not_found = 您的收件箱中没有这条通知。
error-period_proposals_pending = 本周期仍有待审批的扣分建议，请先处理或在关闭时一并决定。

## 案件状态

state-reported = 已上报
state-filed = 已立案
state-not_filed = 不予立案
state-duplicate = 重复
state-dispatched = 已派遣
state-in_progress = 处置中
state-pending_verification = 待核查
state-closed = 已结案
state-withdrawn = 已撤回

## 严重程度

severity-low = 轻微
severity-medium = 一般
severity-high = 严重

## 扣分来源

source-inspection = 检查发现
source-media = 媒体曝光
source-leader_criticism = 领导批评
source-public_complaint = 群众投诉
source-hotline = 热线来电
source-public_report = 群众上报
source-department_transfer = 部门转办
source-leader_instruction = 领导批示

## 角色

role-admin = 管理员
role-supervisor = 考核督查员
role-inspector = 巡查员
role-zone_chief = 片长
role-road_chief = 路长
role-section_chief = 段长
role-squad_member = 队员
role-hotline_operator = 热线受理员

## 台账记录类型

entry-deduction = 扣分
entry-reversal = 冲销

## 工作类别

work-environmental_sanitation = 环境卫生
work-greening = 园林绿化
work-municipal_facilities = 市政设施
work-city_order = 市容秩序
work-environmental_protection = 环境保护

## 是与否

yes = 是
no = 否

## 导出表头

col-seq = 序号
col-id = 编号
col-kind = 类型
col-zone = 片区代码
col-zone_name = 片区
col-period = 考核周期
col-rule = 扣分规则代码
col-rule_text = 扣分规则
col-source = 来源代码
col-source_name = 来源
col-work_category = 工作类别
col-raw_points = 原始扣分
col-coefficient = 难度系数
col-weighted_points = 加权扣分
col-approved_by = 批准人
col-proposed_by = 提出人
col-approved_at = 批准时间
col-found_at = 发现时间
col-case_id = 案件编号
col-case_description = 案件描述
col-note = 扣分说明
col-evidence = 证据照片哈希
col-reverses_id = 冲销的记录
col-reason = 原因
col-hash = 记录哈希
col-zone_chief = 片长
col-road_chief = 路长
col-section_chief = 段长
col-rank = 名次
col-score = 得分
col-deductions = 扣分合计
col-entries = 扣分条数
col-reversals = 冲销条数
col-cases_found = 发现问题数
col-filed = 立案数
col-closed = 结案数
col-closed_on_time = 按时结案数
col-rework = 返工次数
col-overdue = 超期数
col-callbacks = 回访数
col-satisfied = 满意数
col-public_reports = 群众来件数
col-responded_in_time = 及时响应数
col-formula_version = 计分公式版本
col-state = 状态代码
col-state_name = 状态
col-category = 问题类别代码
col-category_name = 问题类别
col-severity = 严重程度代码
col-severity_name = 严重程度
col-description = 描述
col-lat = 纬度
col-lon = 经度
col-captured_at = 拍摄时间
col-received_at = 接收时间
col-deadline = 处置时限
col-version = 版本
col-locked = 已锁定
col-flags = 完整性标记

## 考核通报（每期报告）

report-title = { $period } 期城市管理考核通报
report-subtitle = 生成于 { $at }（{ $tz }）。分数 = 100 − 加权扣分合计；加权扣分 = 原始扣分 × 片区难度系数。
report-ranking = 一、片区排名
report-deductions = 二、各片区扣分明细
report-zone = { $zone }（{ $code }）：{ $count } 条，合计 { $points } 分
report-none = 本期无扣分。
report-signoff = 三、账本签核
report-signoff-text = 本通报依据账本前 { $size } 条记录生成，账本检查点根哈希为 { $root }，由服务器密钥 { $key } 于 { $at } 签名。可用 gridline ledger verify 核验。
report-no-checkpoint = 账本尚无检查点。
col-thumbnail = 证据照片

## 控制台

console-brand = 网格化城市管理考核
console-nav = 主导航
console-nav-overview = 概览
console-nav-queue = 待审核
console-skip = 跳到正文
console-language-name = 中文
console-sign-in = 登录
console-sign-out = 退出
console-username = 用户名
console-password = 密码
console-not-for-you = 控制台供考核办和各级负责人使用；巡查员和队员请使用手机应用。
console-csrf = 请求来源无法确认（页面可能已过期），未执行任何操作。请刷新页面后重试。
console-session-over = 登录已过期。请在新标签页中重新登录，本页填写的内容会保留。
console-error = 出错了
console-back = 返回控制台
console-overview-title = 概览
console-awaiting = 待审核案件
console-incomplete = 证据不完整
console-flagged = 有完整性标记
console-overdue = 超期未整改
console-overdue-filter = 是否超期
console-ranking-title = 本期排名
console-no-ranking = 当前没有进行中的考核周期，或您无权查看排名。
console-queue-title = 审核队列
console-waiting = 待处理（已上报、待核查）
console-any = 全部
console-evidence = 证据
console-evidence-complete = 证据完整
console-evidence-no-photo = 暂无照片
console-evidence-incomplete = 证据不完整
console-flagged-only = 仅有标记的
console-unflagged-only = 仅无标记的
console-apply = 筛选
console-keyboard-hint = 键盘操作：j/k 上下移动，回车打开，f 立案，r 填写不予立案原因，d 标记为本页另一案件的重复，x 选中以批量处理。
console-empty-queue = 没有符合条件的案件。
console-bulk-action = 批量操作
console-bulk-apply = 对选中案件执行
console-bulk-done = 已处理 { $done } 件，{ $refused } 件未能处理。
console-reason = 原因
console-reason-for-reject = 不予立案的原因
console-select = 选择
console-select-case = 选择案件：{ $case }
console-photos = 照片
console-photo-alt = { $role }照片
console-role-before = 整改前
console-role-after = 整改后
console-role-intake = 来件材料
console-role-verification = 现场核实
console-actions = 操作
console-next-page = 下一页
console-back-to-queue = 返回审核队列
console-facts = 案件信息
console-reporter = 上报人
console-position = 位置（WGS-84）
console-asset = 部件编码
console-assignees = 处置责任人
console-no-actions = 您在此状态下没有可执行的操作。
console-duplicate-of = 原案件编号
console-not-verified = 未校验
console-deduction = 扣分
console-no-rule = 考核细则中没有适用于此案件的条款。
console-propose = 提出扣分建议
console-deduction-pending = 待审批的扣分建议
console-consequence = 扣分结果（原始扣分 × 难度系数 = 加权扣分）
console-chain = 责任链（发现时在岗）
console-score-rank = 片区得分（名次）：批准前 → 批准后
console-approve = 批准扣分
console-reject-deduction = 驳回建议
console-deducted = 已批准记入台账
console-nav-ledger = 台账
console-nav-periods = 考核周期
console-ledger-title = 扣分台账
console-chain-ok = 台账哈希链已校验：{ $count } 条记录完整无误。
console-chain-broken = 台账哈希链在第 { $count } 条记录之后断裂，请立即核查！
console-export-csv = 导出 CSV
console-export-xlsx = 导出 Excel
console-no-entries = 没有台账记录。
console-reversal-cause = 冲销原因类别
console-cause-correction = 更正错误
console-cause-appeal = 申诉成立
console-reverse = 冲销
console-reversed = 已冲销
console-periods-title = 考核周期
console-span = 起止时间
console-close-checks = 关闭前检查
console-closed = 已关闭
console-open = 进行中
console-check-ended = 周期已结束
console-check-not-ended = 周期尚未结束（仅管理员可提前关闭）
console-check-no-pending = 没有待审批的扣分建议
console-check-pending = 还有 { $count } 条待审批的扣分建议
console-close = 关闭周期并公布排名
console-close-early = 提前关闭
console-ranking-of = 排名
console-ranking-csv = 排名 CSV
console-ranking-xlsx = 排名 Excel
console-report = 考核通报（Excel）
console-nav-map = 地图
console-map-title = 片区与未办结案件
console-map-empty = 没有可显示的片区。
console-map-open = 处置中
console-map-overdue = 超期
console-map-count = 共 { $count } 件未办结案件，点击标记打开案件。
console-map-truncated = 仅显示最近接收的 { $count } 件；其余案件请在审核队列中筛选查看。
console-map-case = 位置
console-claimed = 上报位置
console-exif-position = 照片拍摄位置（EXIF）
console-exif-distance = 照片拍摄位置距上报位置 { $metres } 米
console-nav-decisions = 待决定
console-decisions-title = 待决定的扣分建议
console-no-pending = 没有等待决定的扣分建议。
console-open-case = 打开案件
console-direct-title = 无案件的扣分（媒体曝光、领导批评、群众投诉）
console-direct-hint = 记下来源和说明；建议同样须经批准（双人复核时由另一位考核人员批准）才记入台账。
console-timeline = 处理经过
console-conflicts = 数据冲突
console-field = 字段
console-server-value = 服务器上的值
console-incoming-value = 手机提交的值
console-resolution = 处理结果

## 流转操作

action-file = 立案
action-reject = 不予立案
action-mark_duplicate = 标记为重复
action-withdraw = 撤回
action-dispatch = 派遣
action-start = 开始处置
action-report_rectified = 报告已整改
action-close = 核查结案
action-return = 退回重新整改
action-reopen = 重新打开

## 案件记录

event-created = 上报
event-edited = 修改
event-comment = 备注
event-transition = 流转
event-verification = 现场核实

## 完整性标记

flag-location_outside_zone = 上报位置不在所属片区内
flag-clock_skew = 手机时钟与服务器相差过大，时间可能不准
flag-photo_reused = 同一张照片也被其他案件使用
flag-exif_time_mismatch = 照片拍摄时间与上报时间不符
flag-exif_gps_mismatch = 照片拍摄位置与上报位置相距过远
flag-exif_gps_outside_zone = 照片拍摄位置不在所属片区内
flag-photo_undecodable = 照片数据损坏，无法显示（原件已保存）
flag-evidence_incomplete = 声明的照片尚未全部收到并校验

## 控制台：按责任人统计、重复案件、系统管理
console-overdue-by-zone = 各片区超期案件
console-overdue-by-person = 各责任人超期案件
console-nobody-rostered = 这些片区没有在岗的片长、路长或段长。
console-person = 人员
console-role = 岗位
console-roles = 角色
console-zones = 片区
console-choose = 请选择…
console-choose-original = 选择原案件…
console-no-originals = 30 天内没有同片区同类别的案件。
console-nav-admin = 系统管理
console-admin-users = 用户
console-admin-devices = 设备
console-admin-roster = 责任人名册
console-admin-zones = 片区与难度系数
console-admin-reference = 分类与考核细则
console-account = 账号状态
console-display-name = 姓名
console-email = 电子邮箱（接收通知）
console-new-password = 新密码
console-set-password = 设置密码
console-save = 保存
console-create = 创建
console-new-user = 新建用户
console-disable = 停用
console-disabled = 已停用
console-enable = 启用
console-device = 设备
console-enrolled = 登记时间
console-revoke = 吊销
console-revoked = 已吊销
console-no-devices = 尚无登记的设备。
console-roster-at = 查询时点
console-roster-history = 全部历史
console-roster-all = 历来所有任职记录，含已结束的。
console-roster-valid-at = { $at } 在岗的任职记录。
console-valid-from = 起
console-valid-to = 止
console-current = 现行
console-every-zone = 全部片区
console-reassign = 调整
console-end-assignment = 结束任职
console-new-assignment = 新增任职
console-open-assignment = 任命
console-code = 编码
console-coefficient-in = { $period } 难度系数
console-zones-hint = 片区边界和名称通过接口发布（POST /v1/zones、PUT /v1/zones/{"{"}id{"}"}）。系数自此后批准的扣分起生效，已入账的扣分保留当时的系数。
console-no-open-period = 没有未结束的考核周期：难度系数按未结束的周期设置。
console-reference-hint = 新版考核细则可在下方以现行版本为基础编写发布（或通过接口 POST /v1/rulebooks）；新版自生效时间起适用，不改变已有的台账记录。分类也可在下方修改。
console-rulebooks = 考核细则
console-rulebook-new = 发布新版本
console-rulebook-new-hint = 已按现行版本填好。在对应行修改细则；清空编号即删除该条；在空行填写即新增。新版本自下方时间起适用于新发现的问题；台账中已有的扣分仍引用当时的版本。
console-rulebook-name = 名称
console-rulebook-from = 生效时间
console-rulebook-any-category = 不选即适用于所有类别
console-rulebook-publish = 发布新版本
console-effective-from = 自 { $at } 起施行
console-sources = 来源
console-taxonomy = 部件事件分类
console-taxonomy-hint = 可在各行修改名称、作业类别和整改时限（小时、工作小时或工作日；留空为默认）；新增条目填写在空行（2 位大类代码或 4 位小类代码；本地新增使用大类 21）。条目不可删除：案件和细则会引用它们。
console-calendar = 工作日历
console-calendar-hint = 工作时间为 { $start } 至 { $end }；{ $weekend }休息。以工作小时或工作日计的时限跳过休息日和下列节假日，并计入调休上班日。案件的处置期限在派遣时确定。
console-calendar-year = { $year } 年：共 { $days } 天
console-calendar-empty = 本年尚未设置节假日或调休上班日。
console-date = 日期
console-calendar-kind = 类型
console-name = 名称
console-calendar-holiday = 节假日（休）
console-calendar-workday = 调休上班（班）
console-calendar-import = 导入某年日历
console-calendar-format = 粘贴 CSV 文件内容：表头为 date,kind,name，每行一天，kind 为 holiday（休）或 workday（班）。文件中出现的年份将整体替换该年的设置，其他年份不变。
console-calendar-import-button = 导入
console-weekday-monday = 周一
console-weekday-tuesday = 周二
console-weekday-wednesday = 周三
console-weekday-thursday = 周四
console-weekday-friday = 周五
console-weekday-saturday = 周六
console-weekday-sunday = 周日
console-name-zh = 中文名称
console-name-en = 英文名称
console-taxonomy-kind = 类型
console-kind-event = 事件
console-kind-component = 部件
console-time-limit = 处置时限
console-time-limit-unit = 时限单位
console-unit-hours = 小时
console-unit-working_hours = 工作小时
console-unit-working_days = 工作日

## 控制台：通知
console-nav-inbox = 通知
console-inbox-title = 通知
console-inbox-unread = { $count } 条未读。
console-inbox-empty = 暂无通知。
console-inbox-when = 时间
console-inbox-what = 内容
console-inbox-new = 新
console-inbox-open = 查看案件
console-inbox-mark-read = 标为已读
console-inbox-acknowledge = 确认知悉
console-inbox-acknowledged = 已于 { $when } 确认知悉
notice-case-dispatched = 派遣给您：{ $zone } 的{ $category }，须在 { $deadline } 前整改完毕。
notice-case-returned = 整改被退回返工：{ $zone } 的{ $category }，期限 { $deadline }。
notice-case-due_soon = 即将到期：{ $zone } 的{ $category }须在 { $deadline } 前整改完毕。
notice-case-overdue = 已逾期：{ $zone } 的{ $category }整改期限为 { $deadline }，尚未整改。
notice-deduction-approved = { $zone } 扣分已批准：细则 { $rule }，{ $points } 分。
notice-deduction-rejected = 您提出的扣分（细则 { $rule }）未获批准：{ $reason }
notice-deduction-proposed = { $zone } 有一项扣分待您审批：细则 { $rule }。
notice-deduction-reversed = { $zone } 的一项扣分已撤销（细则 { $rule }）：{ $reason }
notice-period-closed = 考核期 { $period } 已结束，排名已公布。
notice-case-received = 新来件（{ $source }）：{ $zone } 的{ $category }，待立案。

## 受理热线、群众上报等渠道的案件
console-nav-intake = 受理
console-intake-title = 受理来件
console-intake-lead = 热线来电、群众上报、部门转办、媒体曝光和领导批示受理后成为所在责任区的案件，与巡查发现的案件走同样的流程。
console-intake-report = 来件内容
console-intake-ticket = 工单号
console-intake-place = 地点
console-intake-address = 反映地址
console-intake-lat = 纬度
console-intake-lon = 经度
console-intake-datum = 坐标来源
console-datum-gcj02 = 国内地图（GCJ-02）
console-datum-wgs84 = GPS（WGS-84）
console-datum-bd09 = 百度地图（BD-09）
console-intake-zone = 责任区
console-intake-zone-auto = 按地点自动确定
console-intake-place-help = 填写地点坐标，或所涉部件的编码；仅当地点不在任何责任区内时才选择责任区。
console-intake-map = 责任区地图：点击确定来件位置
console-intake-map-help = 在地图上点击问题所在位置，上方坐标会自动填写。
console-intake-caller = 来电人
console-intake-caller-name = 姓名
console-intake-caller-phone = 电话
console-intake-caller-help = 与案件分开保存：只有热线受理员能看到完整信息，考核人员看到的是脱敏信息，来电 { $days } 天后删除。
console-intake-submit = 受理
console-intake-record = 受理信息
console-intake-received = 受理时间
console-intake-callers = 来电人
console-intake-no-callers = 来电人未留姓名和电话。
console-intake-erased = 已过保存期限并删除
console-intake-merged = 来自合并的重复件
console-intake-callbacks = 回访
console-intake-outcome = 回访结果
console-intake-note = 备注
console-intake-call-back = 记录回访
console-documents = 材料
console-documents-none = 暂无材料。
console-documents-add = 添加 PDF（领导批示、媒体报道等）
console-documents-upload = 上传材料
console-intake-duplicates = 可能重复的案件
console-intake-distance = 相距 { $metres } 米
console-intake-same-asset = 同一部件
console-verification-pending = 须经巡查员现场核实后方可扣分
console-verification-done = 已现场核实
callback-satisfied = 满意
callback-basically_satisfied = 基本满意
callback-dissatisfied = 不满意
callback-unreachable = 未联系上

## 通知邮件设置（站内通知始终收到每一条通知）
console-nav-settings = 我的设置
console-settings-title = 邮件通知
console-settings-intro = 控制台的站内通知始终会收到每一条通知，它记录了谁在何时被告知。这里的设置只决定哪些通知同时通过邮件发给您，以及何时发送。
console-settings-email = 邮件将发送至 { $email }。
console-settings-no-email = 您尚未登记邮箱地址，因此不会收到任何邮件。管理员可在“系统管理 › 用户”中为您添加。
console-settings-kind = 通知类型
console-settings-mode = 邮件
console-settings-follow = 按角色默认：{ $mode }
console-mode-immediately = 立即发送
console-mode-digest = 汇入每日摘要
console-mode-off = 不发送
console-settings-escalation = 督办通知：可以改为汇入每日摘要，但不能关闭。
console-settings-digest-at = 每日摘要于 { $time }（{ $zone } 时间）发送；没有待发通知时不发送。
console-settings-quiet = 免打扰时段
console-settings-quiet-on = 免打扰时段内暂缓发送即时邮件
console-settings-quiet-hint = 落在该时段内的邮件会在时段结束时发出，不会丢失。时段可以跨过午夜，例如 22:00 至次日 07:00。
console-settings-quiet-start = 开始时间
console-settings-quiet-end = 结束时间
console-settings-saved = 设置已保存。
console-admin-notifications = 邮件默认设置
console-roles-notify-intro = 各角色人员未自行设置的通知类型按这里的默认设置发送邮件。一人兼有多个角色时，取其中最及时的一种。无论这里如何设置，站内通知都会收到每一条通知。
console-roles-notify-role = 角色
console-roles-notify-saved = “{ $role }”的默认设置已保存。
notice-kind-case-dispatched = 派遣给我的案件
notice-kind-case-returned = 整改被退回返工
notice-kind-deduction-approved = 扣分获批准
notice-kind-deduction-rejected = 提出的扣分未获批准
notice-kind-deduction-proposed = 待审批的扣分
notice-kind-deduction-reversed = 扣分被撤销
notice-kind-period-closed = 考核期结束、排名公布
notice-kind-case-due_soon = 案件即将到期（督办）
notice-kind-case-overdue = 案件已逾期（督办）
notice-kind-case-received = 巡查以外的新来件
notice-digest-subject = 每日通知摘要（{ $day }）：共 { $count } 条
notice-digest-footer = 每条通知也都在控制台的站内通知中。如需更改邮件发送方式，请在控制台打开“我的设置”。
