// UI strings: Chinese (default) and English; t(key) looks up the current language.
export const STRINGS = {
  zh: {
    title: "网格感知指挥中心", menu_overview: "总览", menu_kpi: "考核", menu_fleet: "设备", logout: "退出",
    login_title: "登录", username: "用户名", password: "密码", login: "登录", login_failed: "用户名或密码错误",
    map: "辖区地图", office: "办事处", area: "片区", grid: "网格", devices: "设备", queue: "案件队列",
    all: "全部", oldest: "最久", red_queue: "红灯", supervised_queue: "督办", none: "无",
    rank_office: "办事处排名", rank_department: "部门排名", fleet: "网关健康",
    live: "实时", polling: "轮询", offline: "离线",
    detail: "案件详情", timeline: "流转记录", evidence: "证据", actions: "可执行操作", series: "传感器曲线",
    reason: "意见/原因", assignee_kind: "派往", assignee_code: "单位代码", no_actions: "当前无可执行操作",
    close_detail: "关闭", refused: "操作被拒绝", done: "已完成", no_series: "无曲线数据",
    reported: "上报", verifying: "核实中", accepted: "受理", registered: "立案", dispatched: "派遣",
    in_progress: "处置中", on_hold: "挂账", handled: "已处置", checking: "核查通过", closed: "结案", cancelled: "作废",
    a_accept: "受理", a_verify: "核实", a_verify_pass: "核实属实", a_verify_fail: "核实不属实", a_register: "立案",
    a_dispatch: "派遣", a_sign: "签收", a_return: "回退", a_extend: "延期", a_hold: "挂账", a_resume: "恢复",
    a_report_handled: "处置反馈", a_self_handle: "自行处置", a_check: "核查", a_check_pass: "核查通过",
    a_check_fail: "核查不通过", a_close: "结案", a_rework: "返工", a_cancel: "作废", a_supervise: "督办",
    a_report: "上报",
    green: "绿灯", yellow: "黄灯", red: "红灯",
    k_reported: "上报", k_registered: "立案", k_closed: "结案", k_closure_rate: "结案率",
    k_on_time_handling_rate: "按期处置率", k_rework_rate: "返工率", k_mtta: "MTTA", k_mttr: "MTTR",
    k_online_rate: "在线率", k_autonomy: "最短续航", k_gateways: "网关",
    unit: "单位", gateway: "网关", link: "链路", buffer: "缓存", autonomy: "续航(小时)", last_seen: "最后上报",
    role_grid_worker: "网格员", role_area_lead: "片区长", role_office_lead: "办事处", role_acceptor: "受理员",
    role_shift_lead: "值班长", role_dispatcher: "派遣员", role_dept_lead: "部门领导", role_dept_handler: "部门处置员",
    role_maintenance: "运维", role_leader: "领导", role_admin: "管理员", role_maintainer: "运维", role_system: "系统",
    department: "部门", grid_team: "网格", maintenance: "运维",
    silenced: "屏蔽区域", forbidden: "无权限",
  },
  en: {
    title: "gridwatch command center", menu_overview: "Overview", menu_kpi: "KPIs", menu_fleet: "Fleet",
    logout: "Log out", login_title: "Log in", username: "Username", password: "Password", login: "Log in",
    login_failed: "Wrong username or password",
    map: "District map", office: "Offices", area: "Areas", grid: "Grids", devices: "Devices", queue: "Case queue",
    all: "All", oldest: "oldest", red_queue: "Red", supervised_queue: "Supervised", none: "none",
    rank_office: "Offices ranked", rank_department: "Departments ranked", fleet: "Gateway health",
    live: "Live", polling: "Polling", offline: "Offline",
    detail: "Case detail", timeline: "Timeline", evidence: "Evidence", actions: "Actions", series: "Sensor series",
    reason: "Reason / note", assignee_kind: "Assign to", assignee_code: "Unit code", no_actions: "No action available",
    close_detail: "Close", refused: "Refused", done: "Done", no_series: "No series data",
    reported: "Reported", verifying: "Verifying", accepted: "Accepted", registered: "Registered",
    dispatched: "Dispatched", in_progress: "In progress", on_hold: "On hold", handled: "Handled",
    checking: "Checked", closed: "Closed", cancelled: "Cancelled",
    a_accept: "Accept", a_verify: "Ask to verify", a_verify_pass: "Verified", a_verify_fail: "Not confirmed",
    a_register: "Register", a_dispatch: "Dispatch", a_sign: "Sign", a_return: "Return", a_extend: "Extend",
    a_hold: "Hold", a_resume: "Resume", a_report_handled: "Report handled", a_self_handle: "Handle myself",
    a_check: "Check", a_check_pass: "Check: pass", a_check_fail: "Check: fail", a_close: "Close",
    a_rework: "Rework", a_cancel: "Cancel", a_supervise: "Supervise", a_report: "Report",
    green: "green", yellow: "yellow", red: "red",
    k_reported: "Reported", k_registered: "Registered", k_closed: "Closed", k_closure_rate: "Closure rate",
    k_on_time_handling_rate: "On-time handling", k_rework_rate: "Rework rate", k_mtta: "MTTA", k_mttr: "MTTR",
    k_online_rate: "Online rate", k_autonomy: "Min. autonomy", k_gateways: "Gateways",
    unit: "Unit", gateway: "Gateway", link: "Link", buffer: "Buffer", autonomy: "Autonomy (h)",
    last_seen: "Last seen",
    role_grid_worker: "grid worker", role_area_lead: "area lead", role_office_lead: "office",
    role_acceptor: "acceptor", role_shift_lead: "shift lead", role_dispatcher: "dispatcher",
    role_dept_lead: "department lead", role_dept_handler: "department handler", role_maintenance: "maintenance",
    role_leader: "leader", role_admin: "admin", role_maintainer: "maintainer", role_system: "system",
    department: "Department", grid_team: "Grid team", maintenance: "Maintenance",
    silenced: "Silenced area", forbidden: "Forbidden",
  },
};

let lang = sessionStorage.getItem("gw.lang") || "zh";

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = next;
  sessionStorage.setItem("gw.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
}

export function t(key) {
  const table = STRINGS[lang];
  return key in table ? table[key] : key;
}

export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.title = t("title");
}
